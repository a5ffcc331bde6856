"""Conditioning values as the objectives and the trainer handle them: a tensor, a (nested) dict
of tensors (a policy's raw observations), or None (an unconditional model)."""

from __future__ import annotations

import torch


def take_rows(cond: object, rows: slice | torch.Tensor) -> object:
    """The given rows of every tensor in ``cond`` (None stays None)."""
    if cond is None:
        return None
    if isinstance(cond, dict):
        return {key: take_rows(value, rows) for key, value in cond.items()}
    return cond[rows]


def detached(cond: object) -> object:
    """``cond`` cut from the autograd graph (for targets computed without gradient)."""
    if isinstance(cond, torch.Tensor):
        return cond.detach()
    if isinstance(cond, dict):
        return {key: detached(value) for key, value in cond.items()}
    return cond
