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
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied.

    One fused call per list (``torch._foreach_*``): on a GPU, a loop over parameters would
    launch a few hundred tiny kernels every step.
    """
    ema_params, params = list(ema.parameters()), list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(f"EMA has {len(ema_params)} parameters, the model {len(params)}")
    torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1.0 - decay)
    ema_buffers, buffers = list(ema.buffers()), list(model.buffers())
    if ema_buffers:
        torch._foreach_copy_(ema_buffers, buffers)
