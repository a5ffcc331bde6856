"""The shortcut objective (Frans et al., arXiv 2410.12557).

A shortcut model ``s(x_t, t, d)`` learns the jump ``x_{t+d} = x_t + d * s(x_t, t, d)``. Each batch
holds two kinds of rows:

* flow rows (all but ``1/K`` of the batch): ``d = 1/M``, ``t`` on the grid ``k/M``, target
  ``x1 - x0`` — exactly the rows of :class:`FlowMatching`;
* self-consistency rows (``B // K`` rows, the first rows of the batch): a level ``d = 2^-l`` with
  ``l`` in ``0 .. log2(M) - 1`` (so ``d`` in ``{1, 1/2, ..., 2/M}``), ``t`` on the grid of
  multiples of ``d``, and the target is two half steps of the teacher (the live weights by
  default, or an EMA of them), computed without gradient and clipped::

      s1 = s(x_t, t, d/2);  x' = x_t + d/2 * s1;  s2 = s(x', t + d/2, d/2);  target = (s1 + s2) / 2

Levels are assigned round-robin from a random offset, so every level receives
``B // K // log2(M)`` rows or one more; none is starved at small batch sizes, and every data row is
used exactly once (no row is dropped when ``B`` does not divide evenly). ``coarse_share`` first
reserves a share of the consistency rows for the two coarsest levels, ``d = 1`` and ``d = 1/2``
(the reference code's ``bootstrap_dt_bias``): the 1-pass level is the one a robot uses, and the
one that learns last, because its targets come down the whole chain of finer levels.

``target_guidance`` (the reference code's ``bootstrap_cfg``) bakes classifier-free guidance into
the finest consistency level, ``d = 2/M``, whose teacher half steps are flow steps: their
velocity becomes ``v_null + w * (v_label - v_null)``. Every coarser level inherits the guided
field through the chain, so a 1-pass sample is guided without guiding the same jump twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from shortcut_policy.objectives.conditioning import detached, take_rows
from shortcut_policy.objectives.errors import row_errors
from shortcut_policy.objectives.flow import flow_rows, interpolate
from shortcut_policy.objectives.guidance import guided_rows
from shortcut_policy.objectives.sampling import (
    SAMPLERS,
    VelocityNet,
    WarmStart,
    integrate,
    interval_schedule,
    shortcut_step_sizes,
    squeezed,
    start_point,
    step_budget,
)


@dataclass
class Shortcut:
    """Shortcut-model training and few-step sampling.

    Attributes:
        finest_steps: M, the finest step ``1/M`` (a power of two; 128 in the paper).
        consistency_every: K; ``B // K`` rows of each batch are self-consistency rows.
        coarse_share: share of the consistency rows reserved for ``d = 1`` and ``d = 1/2``
            (half each, ``d = 1`` takes an odd row); the rest go round-robin over all levels.
        ema_teacher: compute consistency targets with an EMA of the weights (else the live
            network, without gradient).
        teacher_decay: 0 = the teacher is the evaluation EMA (``train.ema_decay``); > 0 = the
            trainer keeps a separate, faster teacher EMA with this decay (its lag per hop of the
            bootstrap chain is about ``1 / (1 - teacher_decay)`` steps).
        target_clip: consistency targets (each half-step velocity) are clipped to ``±target_clip``.
        path_eps: ``eps`` in the interpolation (see :mod:`flow`).
        default_steps: network passes used when a caller gives no budget.
        target_guidance: guidance scale ``w`` baked into the ``d = 2/M`` targets (1 = none);
            needs a class-conditional network, one with ``null_condition(cond)``.
        sampler: how N passes are spent (:func:`~shortcut_policy.objectives.sampling.
            interval_schedule`): ``"jumps"`` (dyadic jumps), ``"euler"`` or ``"jump_euler"``.
    """

    finest_steps: int = 128
    # The one-pass recipe (docs/RESULTS.md, "One pass as good as many"): half the batch are
    # consistency rows, half of those at d = 1 and 1/2, targets from the live weights.
    consistency_every: int = 2
    coarse_share: float = 0.5
    ema_teacher: bool = False
    teacher_decay: float = 0.0
    target_clip: float = 4.0
    path_eps: float = 0.0
    default_steps: int = 1
    target_guidance: float = 1.0
    sampler: str = "jumps"
    name: str = "shortcut"

    def __post_init__(self) -> None:
        if self.finest_steps < 2 or self.finest_steps & (self.finest_steps - 1):
            raise ValueError(f"finest_steps must be a power of two >= 2, got {self.finest_steps}")
        if self.consistency_every < 1:
            raise ValueError(f"consistency_every must be >= 1, got {self.consistency_every}")
        if not 0.0 <= self.coarse_share <= 1.0:
            raise ValueError(f"coarse_share must lie in [0, 1], got {self.coarse_share}")
        if not 0.0 <= self.teacher_decay < 1.0:
            raise ValueError(
                f"teacher_decay must lie in [0, 1) (0 = use the evaluation EMA), "
                f"got {self.teacher_decay}"
            )
        if not self.target_guidance > 0.0:
            raise ValueError(f"target_guidance must be > 0 (1 = none), got {self.target_guidance}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.teacher_decay and not self.ema_teacher:
            raise ValueError(
                "teacher_decay sets the decay of a teacher EMA; set ema_teacher=true to use one "
                "(ema_teacher=false takes targets from the live weights)"
            )

    @property
    def n_levels(self) -> int:
        """Number of consistency levels: ``d = 1, 1/2, ..., 2/M``."""
        return int(math.log2(self.finest_steps))

    def budget(self, steps: object = None) -> int:
        """``steps`` checked (an integer in ``[1, M]``; None: ``default_steps``)."""
        return step_budget(steps, self.default_steps, self.finest_steps, "a shortcut model")

    @property
    def finest_d(self) -> float:
        return 1.0 / self.finest_steps

    def teacher_rows(self, batch: int) -> int:
        """Rows whose targets come from a teacher EMA with its own conditioning (the
        consistency rows, first in the batch), or 0 when targets come from the live weights."""
        return self.consistency_rows(batch) if self.ema_teacher else 0

    def consistency_rows(self, batch: int) -> int:
        """How many rows of a batch of ``batch`` are self-consistency rows.

        ``batch // K``, but at least one whenever the batch has two rows or more, so small
        batches still train self-consistency.
        """
        rows = batch // self.consistency_every
        return max(rows, 1) if batch >= 2 else rows

    def consistency_levels(self, n_rows: int, device: torch.device) -> torch.Tensor:
        """Level index per row (0 is ``d = 1``): the coarse share first, then round-robin over
        all levels from a random offset, so every level gets rows."""
        n_coarse = round(n_rows * self.coarse_share)
        coarse = torch.arange(n_coarse, device=device) % min(2, self.n_levels)
        offset = torch.randint(0, self.n_levels, (1,), device=device)
        spread = (torch.arange(n_rows - n_coarse, device=device) + offset) % self.n_levels
        return torch.cat([coarse, spread])

    @torch.no_grad()
    def consistency_target(
        self,
        teacher: VelocityNet,
        x_t: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        cond: object,
    ) -> torch.Tensor:
        """Velocity of two half steps of size ``d/2`` from ``(x_t, t)``, averaged and clipped."""
        half = d / 2
        s1 = self.teacher_velocity(teacher, x_t, t, half, cond)
        x_mid = x_t + half.view(-1, *([1] * (x_t.dim() - 1))) * s1
        s2 = self.teacher_velocity(teacher, x_mid, t + half, half, cond)
        return (s1 + s2) / 2

    def teacher_velocity(
        self, teacher: VelocityNet, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: object
    ) -> torch.Tensor:
        """The teacher's clipped velocity; guided (``target_guidance``) on rows at ``d = 1/M``."""
        v = teacher(x, t, d, cond)
        v = guided_rows(teacher, v, x, t, d, cond, self.target_guidance, self.finest_d)
        return v.clamp(-self.target_clip, self.target_clip)

    def consistency_inputs(
        self, x1: torch.Tensor, x0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_t, t, d)`` for consistency rows: a level per row and ``t`` on its grid."""
        levels = self.consistency_levels(x1.shape[0], x1.device)
        d = torch.pow(2.0, -levels.to(x1.dtype))
        cells = torch.pow(2, levels)
        k = torch.floor(torch.rand(x1.shape[0], device=x1.device) * cells)
        t = k.to(x1.dtype) * d
        return interpolate(x0, x1, t, self.path_eps), t, d

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
        free: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Shortcut loss on a batch ``x1: (B, ...)`` with conditioning ``cond`` (rows aligned).

        ``teacher`` is the EMA network (used only when ``ema_teacher``; else ``net`` itself);
        ``teacher_cond`` is the conditioning for the teacher (defaults to ``cond`` detached);
        ``free`` the positions that count (:func:`row_errors`; rows keep their order here).
        Returns the loss to minimise and 0-d tensors for logging (``loss_flow``,
        ``loss_consistency``).
        """
        n_sc = self.consistency_rows(x1.shape[0])
        sc, fl = slice(0, n_sc), slice(n_sc, None)
        # Flow rows first, drawn exactly as FlowMatching draws them.
        xf, tf, df, target_f = flow_rows(x1[fl], self.finest_steps, self.path_eps)
        xs, ts, ds = self.consistency_inputs(x1[sc], torch.randn_like(x1[sc]))
        use = teacher if (self.ema_teacher and teacher is not None) else net
        t_cond = detached(cond) if teacher_cond is None else teacher_cond
        target_s = self.consistency_target(use, xs, ts, ds, take_rows(t_cond, sc))

        pred = net(torch.cat([xs, xf]), torch.cat([ts, tf]), torch.cat([ds, df]), cond)
        err = row_errors(pred, torch.cat([target_s, target_f]), free)
        loss = err.mean()
        metrics = {"loss": loss.detach()}
        if n_sc < len(err):
            metrics["loss_flow"] = err[n_sc:].detach().mean()
        if n_sc:
            metrics["loss_consistency"] = err[:n_sc].detach().mean()
        return loss, metrics

    def sample(
        self,
        net: VelocityNet,
        noise: torch.Tensor,
        cond: object = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        start: WarmStart | None = None,
    ) -> torch.Tensor:
        """Exactly ``steps`` network passes (any integer in ``[1, M]``) spent as ``sampler``
        says; no fresh noise. A warm ``start`` needs ``1 - t0`` a power of two (1/2, 1/4 ...):
        the squeezed jumps are then step sizes the network was trained on."""
        x, t0 = start_point(noise, start, self.path_eps)
        span = 1.0 - t0
        if start is not None and span != 2.0 ** round(math.log2(span)):
            raise ValueError(f"a shortcut model starts warm at t0 = 1/2, 3/4, ...; got {t0}")
        jumps = shortcut_step_sizes(self.budget(steps), self.finest_steps)
        schedule = interval_schedule(self.sampler, jumps, self.finest_d)
        return integrate(net, x, cond, *squeezed(*schedule, t0, self.finest_d), t0=t0)
