"""Learning rate as a pure function of the step, so a resumed run needs no scheduler state."""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the noise drawn at ``step`` on ``rank``: a resumed run, on any number of ranks,
    draws what an uninterrupted one would (no generator state in checkpoints)."""
    return (seed * 1_000_003 + step) * 1_009 + rank
