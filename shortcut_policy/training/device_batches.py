"""The training set held in device memory, batches drawn there: no loader, no per-step copies.

Low-dimensional windows are small (Push-T: ~25,000 windows of 2 x 20 observation values and
16 x 2 actions, ~5 MB), so every window is read once, stacked and moved to the device. Each step
then indexes those tensors with the :class:`StepBatchSampler`'s indices. The epoch's permutation
is drawn on the host once per epoch, exactly as the sampler draws it, and moved in one copy, so
the batches equal the loader's for the same seed and step, and a resumed run continues the same
order. Camera frames stay uint8 (4x smaller than float); whether they fit is the caller's call:
:func:`stacked_bytes` says how much memory the set takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from shortcut_policy.training.batches import StepBatchSampler


def stacked_windows(dataset: Dataset, device: torch.device, chunk: int = 4096) -> Any:
    """Every item of ``dataset``, collated along a new first axis and moved to ``device``:
    the same nested dict of tensors a loader's batch is, with ``len(dataset)`` rows."""
    parts = list(DataLoader(dataset, batch_size=chunk, shuffle=False))
    return _to(_concat(parts), device)


def stacked_bytes(tree: Any) -> int:
    """Bytes held by the tensors of ``tree``."""
    if isinstance(tree, dict):
        return sum(stacked_bytes(value) for value in tree.values())
    return tree.numel() * tree.element_size()


class DeviceBatches:
    """Iterates this rank's batches for steps ``sampler.start_step, ...`` from device tensors."""

    def __init__(self, dataset: Dataset, sampler: StepBatchSampler, device: torch.device) -> None:
        self.windows = stacked_windows(dataset, device)
        self.sampler, self.device = sampler, device

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        step, epoch, order = sampler.start_step, None, None
        while True:
            step_epoch, position = divmod(step, sampler.steps_per_epoch)
            if step_epoch != epoch:  # one host draw and one copy per epoch
                epoch, order = step_epoch, sampler.epoch_order(step_epoch).to(self.device)
            start = position * sampler.batch_size
            rows = order[start : start + sampler.batch_size][sampler.rank :: sampler.world]
            yield _take(self.windows, rows)
            step += 1


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: _concat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


def _to(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, dict):
        return {key: _to(value, device) for key, value in tree.items()}
    return tree.to(device)


def _take(tree: Any, rows: torch.Tensor) -> Any:
    if isinstance(tree, dict):
        return {key: _take(value, rows) for key, value in tree.items()}
    return tree.index_select(0, rows)
