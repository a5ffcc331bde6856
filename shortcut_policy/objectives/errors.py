"""Per-row squared errors over the positions that count: the one loss reduction every objective
shares.

A policy trained with a given prefix (``model.prefix_max``) is told its first ``k`` actions and
predicts only the rest; the trainer passes ``free (B, T)``, the positions the network predicts,
so the given ones add nothing to a row's error. That matters beyond the loss's value: MeanFlow
weights each row by ``1 / error``, which a constant error from given positions would distort.
"""

from __future__ import annotations

import torch


def row_errors(
    pred: torch.Tensor, target: torch.Tensor, free: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error per row, ``(B,)``.

    ``pred, target: (B, T, ...)``; ``free: (B, T)`` bool, the positions of the second axis that
    count (None: all of them). A row's error is the mean over its free positions' elements.
    """
    squared = (pred - target) ** 2
    if free is None:
        return squared.flatten(1).mean(1)
    if free.shape != squared.shape[:2]:
        raise ValueError(f"free has shape {tuple(free.shape)}, expected {tuple(squared.shape[:2])}")
    weight = free.reshape(*free.shape, *[1] * (squared.dim() - 2)).to(squared.dtype)
    per_position = squared[0, 0].numel()
    counted = weight.flatten(1).sum(1) * per_position
    return (squared * weight).flatten(1).sum(1) / counted.clamp(min=1)
