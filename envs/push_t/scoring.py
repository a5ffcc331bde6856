"""Push-T success and score, the measure every Push-T figure in this repository uses.

An episode succeeds when the block covers more than 95% of the goal area at any step within the
step limit. Its score is the maximum over the episode of ``min(coverage / 0.95, 1)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SUCCESS_THRESHOLD = 0.95


def step_score(coverage: float, threshold: float = SUCCESS_THRESHOLD) -> float:
    """Per-step score ``min(coverage / threshold, 1)`` (coverage is a fraction in [0, 1])."""
    return float(min(max(coverage, 0.0) / threshold, 1.0))


def episode_score(coverages: Iterable[float], threshold: float = SUCCESS_THRESHOLD) -> float:
    """Score of an episode: max over steps of ``min(coverage / threshold, 1)``; 0.0 if empty."""
    cov = np.asarray(list(coverages), dtype=np.float64)
    if cov.size == 0:
        return 0.0
    return step_score(float(cov.max()), threshold)


def episode_success(coverages: Iterable[float], threshold: float = SUCCESS_THRESHOLD) -> bool:
    """True when coverage exceeds ``threshold`` (strictly, as gym-pusht does) at any step."""
    cov = np.asarray(list(coverages), dtype=np.float64)
    return bool(cov.size > 0 and (cov > threshold).any())
