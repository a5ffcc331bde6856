"""Learning rate as a pure function of the step, so a resumed run needs no scheduler state."""

from __future__ import annotations

import math


def warmup_cosine_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, floor: float = 0.0
) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to
    ``floor * base_lr`` (``floor = 1`` is a constant rate after warm-up).

    A floor keeps the late steps learning: the shortcut model's coarse levels get usable
    bootstrap targets only late in training, when a cosine to 0 has almost stopped.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"train.lr_floor must lie in [0, 1] (a share of train.lr), got {floor}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return base_lr * (floor + (1.0 - floor) * cosine)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the noise drawn at ``step`` on ``rank``: a resumed run, on any number of ranks,
    draws what an uninterrupted one would (no generator state in checkpoints)."""
    return (seed * 1_000_003 + step) * 1_009 + rank
