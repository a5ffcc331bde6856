"""Exponential moving average of weights, with the usual warm-up of the decay."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(step: int, max_decay: float) -> float:
    """Decay used after ``step`` updates: ``min(max_decay, (1 + step) / (10 + step))``.

    Early in training the average follows the weights closely, so the EMA teacher of the
    shortcut objective is not stuck at the random initialisation.
    """
    return min(max_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p.detach(), 1.0 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers(), strict=True):
        ema_b.copy_(b)
