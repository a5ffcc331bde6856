"""Resumable, rank-aware batch order: the indices of step ``s`` depend only on (seed, s).

Each epoch is a permutation drawn from ``seed`` and the epoch number; step ``s`` takes the
``s``-th slice of ``batch_size`` indices of its epoch (the incomplete tail of an epoch is skipped).
Under data parallelism each rank takes every ``world``-th index of the global batch, so the
global batch is the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class StepBatchSampler(Sampler[list[int]]):
    """Yields this rank's indices for steps ``start_step, start_step + 1, ...`` forever."""

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size > n_items:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {n_items} training windows; lower it"
            )
        if batch_size % world:
            raise ValueError(
                f"train.batch_size {batch_size} is not divisible by the {world} processes "
                "(torchrun --nnodes x --nproc_per_node); use a multiple of the process count"
            )
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self.steps_per_epoch = n_items // batch_size

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n_items, generator=generator)

    def global_batch(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.global_batch(step)[self.rank :: self.world]
            step += 1
