"""Wall time of a call on a device: what the latency figures and the deadline budget measure."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch


def timed_ms(
    fn: Callable[[], object], device: torch.device, n_calls: int, warmup: int
) -> np.ndarray:
    """Milliseconds per call of ``fn`` over ``n_calls`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n_calls):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000.0
