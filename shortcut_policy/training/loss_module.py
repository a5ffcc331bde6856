"""The network and its objective as one module, so data parallelism wraps a single forward.

``DistributedDataParallel`` averages the gradients of the parameters used inside its
``forward``. A policy's loss touches the observation encoder (in ``prepare_batch``) and the
action head (in the objective's calls), so both must run inside that one forward: this module is
that forward. The objective still takes the network as an argument and the network still knows
nothing about the objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from shortcut_policy.objectives.conditioning import take_rows
from shortcut_policy.training.distributed import Rank


class ObjectiveLoss(nn.Module):
    """``forward(batch, teacher) -> (loss, metrics)`` for ``objective`` applied to ``model``.

    ``model`` needs ``augment(batch)``, ``prepare_batch(batch) -> (x1, cond)``,
    ``free_positions(batch)`` (what counts in the loss), ``cond_from_weights`` and
    ``model(x, t, d, cond)`` (a PolicyNetwork or an ImageGenerator).
    ``teacher`` (the EMA copy, outside data parallelism: every rank holds the same one) gets its
    own conditioning from the same batch when the objective uses it.
    """

    def __init__(self, model: nn.Module, objective: Any) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict, teacher: nn.Module | None) -> tuple[torch.Tensor, dict]:
        batch = self.model.augment(batch)  # one augmentation, seen by student and teacher
        x1, cond = self.model.prepare_batch(batch)
        teacher_cond = None
        # A learned encoder (a policy's) gives the teacher its own conditioning; plain labels
        # (an image model's, with class dropout already applied) are shared as they are.
        rows = self.objective.teacher_rows(len(x1)) if teacher is not None else 0
        if rows and self.model.cond_from_weights:
            # The teacher only sees its rows, which come first: encoding just those saves most
            # of a second encoder pass (cameras make it the costly part).
            with torch.no_grad():
                teacher_cond = teacher.prepare_batch(take_rows(batch, slice(0, rows)))[1]
        free = self.model.free_positions(batch)
        return self.objective.loss(self.model, x1, cond, teacher, teacher_cond, free)


def loss_module(model: nn.Module, objective: Any, rank: Rank, device: torch.device) -> nn.Module:
    """:class:`ObjectiveLoss`, wrapped in DDP when several processes train together.

    DDP broadcasts rank 0's weights at construction, so every rank starts from the same network;
    buffers (the normalizer's fixed statistics) need no broadcast at every step.
    """
    module = ObjectiveLoss(model, objective)
    if not rank.parallel:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)
