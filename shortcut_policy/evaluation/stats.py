"""Small statistics helpers for reporting rates and means with 95% confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import t as student_t


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial rate.

    Args:
        successes: number of successes, 0 <= successes <= n.
        n: number of trials.
        z: normal quantile (1.96 gives a 95% interval).

    Returns:
        (low, high) bounds in [0, 1]; (0.0, 1.0) when n == 0 (nothing is known).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # The bounds are exactly 0 and 1 when p is; pin them so rounding noise does not show.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean with Student's t interval (sample std / sqrt(n), n - 1 degrees of freedom).

    At small n the normal quantile (1.96) would be too narrow: t gives 4.30 at n = 3 and 2.01 at
    n = 50, and tends to 1.96.

    Returns:
        (mean, low, high); low == high == mean when fewer than two values are given.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return mean, mean - half, mean + half
