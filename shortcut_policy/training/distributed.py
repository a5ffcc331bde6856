"""Data parallelism under ``torchrun``: who am I, which device, and the few collectives we need.

``torchrun`` starts one process per device and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). A plain
``python -m ...`` has none of these and runs as the only rank, so the same code serves one CPU,
one GPU, several GPUs and several machines. Gradients are averaged by PyTorch's
``DistributedDataParallel``; this module only sets the process group up and wraps its failures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


class PeerFailure(RuntimeError):
    """A collective with the other ranks failed: one of them died, hung or was killed."""


@dataclass(frozen=True)
class Rank:
    """This process: ``rank`` of ``world`` processes, ``local`` index on its node."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, reports and progress bars."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def rank_from_environment() -> Rank:
    """The launch position ``torchrun`` set; one process of one when not launched by it."""
    env = os.environ
    return Rank(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this process's GPU when there is one; ``cuda`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible; use device=cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"local rank {local_rank} has no GPU: this node shows {torch.cuda.device_count()}; "
            "launch at most that many processes per node (torchrun --nproc_per_node)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def start(device_name: str, timeout_s: float) -> tuple[Rank, torch.device]:
    """Join the process group (when launched by torchrun) and pick this rank's device.

    NCCL for GPUs, gloo for CPUs. ``timeout_s`` bounds how long a collective waits for a rank
    that stopped answering before every other rank raises instead of hanging.
    """
    rank = rank_from_environment()
    device = resolve_device(device_name, rank.local)
    if rank.parallel and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=timeout_s),
            # Binds NCCL's communicator to this rank's GPU now, instead of guessing it (and
            # warning) at the first collective.
            device_id=device if device.type == "cuda" else None,
        )
    return rank, device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(
    values: dict[str, torch.Tensor], rank: Rank, device: torch.device
) -> dict[str, float]:
    """0-d metric tensors averaged over ranks, as floats (every rank passes the same keys).
    One stacked tensor, so one all-reduce and one host sync."""
    keys = sorted(values)
    total = torch.stack([values[key].to(device, torch.float64) for key in keys])
    if rank.parallel:
        dist.all_reduce(total)
        total = total / rank.world
    return dict(zip(keys, total.tolist(), strict=True))


def gather_lists(items: list[Any], rank: Rank) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order (plain picklable data only)."""
    if not rank.parallel:
        return list(items)
    parts: list[list[Any]] = [[] for _ in range(rank.world)]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def barrier(rank: Rank) -> None:
    if rank.parallel:
        dist.barrier()


@contextmanager
def failures_named(rank: Rank, resume_hint: str) -> Iterator[None]:
    """Turn a failure inside a block that talks to the other ranks into a :class:`PeerFailure`.

    Only blocks with collectives are wrapped (DDP's backward, reductions, barriers): gloo and NCCL
    report a dead peer or a timeout as a plain ``RuntimeError``, so its first line is kept.
    """
    try:
        yield
    except RuntimeError as error:
        if not rank.parallel or isinstance(error, PeerFailure):
            raise
        raise PeerFailure(
            f"rank {rank.rank} of {rank.world}: a collective with the other ranks failed "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). Another process most "
            f"likely died or was killed; this one stops too. {resume_hint}"
        ) from error
