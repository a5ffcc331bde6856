"""What the trainer, the samplers and the policy may ask of an objective: one explicit contract.

An objective is a plain dataclass of settings (its config, saved in checkpoints) with:

* ``loss(net, x1, cond, teacher, teacher_cond, free) -> (loss, metrics)``: the training loss
  of a batch ``x1 (B, ...)``, counting only the positions ``free (B, T)`` marks (None: all;
  ``objectives/errors.py``); ``metrics`` are 0-d tensors (detached), read on the host only at
  log steps;
* ``sample(net, noise, cond, steps, generator, start) -> x``: ``steps`` network passes from
  ``noise``, or from a warm ``start = (t0, guess)`` (flow-type objectives; DDPM refuses);
* ``budget(steps) -> int``: ``steps`` checked (a :class:`BudgetError` names the valid range);
* ``finest_d``: the step size the network is told for its finest calls. Classifier-free
  guidance applies to calls at or below it (flow-like steps), never to longer jumps;
* ``teacher_rows(batch) -> int``: how many (leading) rows of a batch get targets from a
  teacher network with its own conditioning (0: no such teacher);
* ``teacher_decay``: > 0 asks the trainer for a separate teacher EMA with this decay.

Objectives take the network as an argument; networks know nothing about objectives.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from shortcut_policy.objectives.sampling import VelocityNet


@runtime_checkable
class Objective(Protocol):
    name: str
    default_steps: int
    teacher_decay: float

    @property
    def finest_d(self) -> float: ...

    def budget(self, steps: object = None) -> int: ...

    def teacher_rows(self, batch: int) -> int: ...

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
        free: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def sample(
        self,
        net: VelocityNet,
        noise: torch.Tensor,
        cond: object = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        start: tuple[float, torch.Tensor] | None = None,
    ) -> torch.Tensor: ...
