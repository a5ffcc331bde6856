"""MeanFlow (Geng et al., "Mean Flows for One-step Generative Modeling", arXiv 2505.13447).

The network learns the *average* velocity over an interval instead of the instantaneous one. In
this repo's conventions (``t = 0`` noise, ``t = 1`` data, ``x_t = (1 - t) x0 + t x1``) a jump of
length ``d`` from ``(x_t, t)`` is ``x_{t+d} = x_t + d * u(x_t, t, d)``, where

    u(x_t, t, d) = (1 / d) * integral of v(x_s, s) ds over [t, t + d].

Differentiating ``d * u`` in the start time ``t`` with the end ``t + d`` held fixed gives the
MeanFlow identity, which needs no integral::

    u(x_t, t, d) = v + d * (du/dt along the path),   du/dt = (∂u/∂x) v + ∂u/∂t - ∂u/∂d,

where ``v`` is the (marginal) velocity at ``x_t``. The first ``v`` is replaced by the sample's
``x1 - x0``, as in flow matching; the one that moves ``x`` in ``du/dt`` is either that too (the
paper) or the network's own estimate (``tangent``). The total derivative is one
Jacobian-vector product of the network with tangent ``(v, 1, -1)`` (``torch.func.jvp``); the
right-hand side, with that product, is the target (no gradient), and its primal output is the
prediction.

The network's ``d`` input carries the interval length, as for shortcut models, so no network
changes; but the target holds the network's derivatives in ``t`` and ``d``, so both must be
embedded smoothly (``model.step_embedding: length``, ``model.time_scale: 1``, which
``objective=meanflow`` sets). Intervals shorter than the finest step ``1/M`` are lengthened to
it: a row with ``r = t`` (a share ``flow_share``) is told ``d = 1/M``, where the target is the
instantaneous velocity up to a ``1/M`` correction, as in flow matching.

``consistency`` chooses how the target of the other rows (the intervals) is built:

* ``"jvp"``: the identity above, through one forward-mode pass (the paper; 2.1x a flow step);
* ``"split"``: no derivative at all (SplitMeanFlow, arXiv 2507.16884, the continuous form of
  the shortcut model's two half steps). Split the interval at a random ``s`` and ask one jump to
  land where two shorter ones do, under no gradient::

      d * u(x_t, t, d) = s * u(x_t, t, s) + (d - s) * u(x_{t+s}, t + s, d - s),
      x_{t+s} = x_t + s * u(x_t, t, s);

* ``"difference"``: the identity's total derivative by a central finite difference of step
  ``fd_eps`` along ``(v, 1, -1)`` (Transition Models, arXiv 2509.04394), in fp32.

The two JVP-free targets cost two no-grad passes on the interval rows only, and their flow
rows' target is ``x1 - x0`` exactly (no ``1/M`` correction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from shortcut_policy.objectives.conditioning import take_rows
from shortcut_policy.objectives.errors import row_errors
from shortcut_policy.objectives.flow import interpolate
from shortcut_policy.objectives.sampling import (
    SAMPLERS,
    VelocityNet,
    WarmStart,
    expand_like,
    integrate,
    interval_schedule,
    squeezed,
    start_point,
    step_budget,
    uniform_step_sizes,
)

TANGENTS = ("conditional", "predicted")
CONSISTENCY = ("jvp", "split", "difference")


def shaped_like(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` unchanged if it has ``x``'s shape; otherwise a ValueError naming both."""
    if out.shape != x.shape:
        raise ValueError(
            f"the network returns {tuple(out.shape)} for samples of {tuple(x.shape)}: "
            "it was built for other data than this objective is given"
        )
    return out


@contextmanager
def _no_attention_fastpath() -> Iterator[None]:
    """``nn.MultiheadAttention``'s fused inference path switched off for the block."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


@dataclass
class MeanFlow:
    """MeanFlow training and any-budget sampling.

    Attributes:
        finest_steps: M; intervals are at least ``1/M`` long and budgets go up to ``M``.
        flow_share: share of rows with ``r = t`` (the paper's best: 75%).
        full_share: share of rows (the last of the batch) that span the whole path, ``t = 0``
            and ``d = 1``: the one-pass jump a robot takes, which two random times rarely
            span (Transition Models train ~10% of such rows).
        time_mu, time_sigma: the logit-normal both times are drawn from (then sorted). The
            paper's location -0.4 is on its reversed time axis (1 = noise), +0.4 here; that
            rarely visits the noise end, where a policy chooses between modes, so 0 here.
        norm_p, norm_eps: adaptive loss weight ``1 / (err + eps)^p`` per row, without gradient
            (p = 0: plain squared error; the paper uses p = 1).
        tangent: the velocity the path moves with in the derivative. ``"predicted"``: the
            network's own instantaneous velocity ``u(x_t, t, 1/M)``, without gradient
            (Improved MeanFlow, Geng et al. 2025). That is the marginal velocity the identity
            is about, so the target loses the noise of ``(∂u/∂x)(x1 - x0)``; it costs one
            more forward pass. ``"conditional"``: the sample's own ``x1 - x0`` (the paper).
        consistency: how interval rows get their target: ``"jvp"``, ``"split"`` or
            ``"difference"`` (see the module's docstring).
        fd_eps: the finite difference's step in time (``consistency="difference"``).
        sampler: how N passes are spent (:func:`~shortcut_policy.objectives.sampling.
            interval_schedule`): ``"jumps"`` (N jumps of ``1/N``), ``"euler"`` or
            ``"jump_euler"``.
        default_steps: network passes per sample when the caller gives none.
    """

    finest_steps: int = 128
    flow_share: float = 0.75
    full_share: float = 0.0
    time_mu: float = 0.0
    time_sigma: float = 1.0
    norm_p: float = 1.0
    norm_eps: float = 1e-3
    tangent: str = "predicted"
    consistency: str = "jvp"
    fd_eps: float = 0.005
    sampler: str = "jumps"
    default_steps: int = 1
    name: str = "meanflow"
    teacher_decay = 0.0  # no teacher (the objective contract)

    def __post_init__(self) -> None:
        if self.finest_steps < 1:
            raise ValueError(f"finest_steps must be >= 1, got {self.finest_steps}")
        if not 0.0 <= self.flow_share <= 1.0:
            raise ValueError(f"flow_share must lie in [0, 1], got {self.flow_share}")
        if not 0.0 <= self.full_share <= 1.0 - self.flow_share:
            raise ValueError(
                f"full_share must lie in [0, 1 - flow_share = {1.0 - self.flow_share:g}], "
                f"got {self.full_share}"
            )
        if self.time_sigma <= 0 or self.norm_eps <= 0 or self.norm_p < 0:
            raise ValueError("time_sigma and norm_eps must be > 0 and norm_p >= 0")
        if self.tangent not in TANGENTS:
            raise ValueError(f"tangent must be one of {TANGENTS}, got {self.tangent!r}")
        if self.consistency not in CONSISTENCY:
            raise ValueError(f"consistency must be one of {CONSISTENCY}, got {self.consistency!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 0.0 < self.fd_eps < self.finest_d:
            raise ValueError(
                f"fd_eps must lie in (0, 1/finest_steps = {self.finest_d:.4g}), got {self.fd_eps}"
            )

    @property
    def finest_d(self) -> float:
        return 1.0 / self.finest_steps

    def teacher_rows(self, batch: int) -> int:
        return 0

    def budget(self, steps: object = None) -> int:
        """``steps`` checked (an integer in ``[1, M]``; None: ``default_steps``)."""
        return step_budget(steps, self.default_steps, self.finest_steps, "MeanFlow")

    def intervals(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Start times ``t`` and lengths ``d`` ``(B,)``: ``d`` in ``[1/M, 1]``, ``t + d <= 1``.

        The first ``round(B * flow_share)`` rows have ``r = t`` (so ``d = 1/M``); the last
        ``round(B * full_share)`` rows span the whole path (``t = 0``, ``d = 1``).
        """
        times = torch.sigmoid(self.time_mu + self.time_sigma * torch.randn(2, batch, device=device))
        start, end = times.min(0).values, times.max(0).values
        n_flow, n_full = round(batch * self.flow_share), round(batch * self.full_share)
        n_full = min(n_full, batch - n_flow)
        start = torch.cat([start[: batch - n_full], torch.zeros(n_full, device=device)])
        end = torch.cat(
            [start[:n_flow], end[n_flow : batch - n_full], torch.ones(n_full, device=device)]
        )
        d = (end - start).clamp(min=self.finest_d)
        return torch.minimum(start, 1.0 - d), d

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
        free: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MeanFlow loss on ``x1: (B, ...)``; the target is built from ``net`` itself (no
        teacher; ``free``: the positions that count, see :func:`row_errors`). Returns the
        weighted loss and floats for logging (``mse``: unweighted)."""
        x0 = torch.randn_like(x1)
        t, d = self.intervals(x1.shape[0], x1.device)
        x_t = interpolate(x0, x1, t, 0.0)
        v = x1 - x0
        if self.consistency == "jvp":
            pred, dudt = self.average_velocity_and_derivative(
                net, x_t, t, d, self.path_velocity(net, x_t, t, v, cond), cond
            )
            target = (v + expand_like(d, v) * dudt).detach()
        else:
            target = self.jvp_free_target(net, x_t, t, d, v, cond)
            pred = net(x_t, t, d, cond)
        shaped_like(pred, x_t)
        err = row_errors(pred, target, free)
        weight = (err.detach() + self.norm_eps) ** -self.norm_p
        loss = (weight * err).mean()
        return loss, {"loss": loss.detach(), "mse": err.detach().mean()}

    @torch.no_grad()
    def jvp_free_target(
        self,
        net: VelocityNet,
        x_t: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        v: torch.Tensor,
        cond: object,
    ) -> torch.Tensor:
        """Targets ``(B, ...)``: ``v`` on the flow rows, ``consistency``'s on the interval rows
        (the rows after the first ``round(B * flow_share)``, see :meth:`intervals`)."""
        rows = slice(round(x_t.shape[0] * self.flow_share), None)
        part = take_rows(cond, rows)
        if self.consistency == "split":
            long = self.split_target(net, x_t[rows], t[rows], d[rows], v[rows], part)
        else:
            tangent = self.path_velocity(net, x_t[rows], t[rows], v[rows], part)
            dudt = self.difference_derivative(net, x_t[rows], t[rows], d[rows], tangent, part)
            long = v[rows] + expand_like(d[rows], dudt) * dudt
        return torch.cat([v[: rows.start], long.to(v.dtype)])

    def split_target(
        self,
        net: VelocityNet,
        x_t: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        v: torch.Tensor,
        cond: object,
    ) -> torch.Tensor:
        """The average velocity of two jumps, ``s`` then ``d - s``, with ``s`` uniform in
        ``[1/M, d - 1/M]``; intervals shorter than ``2/M`` cannot be split and are flow rows
        (target ``v``)."""
        finest = self.finest_d
        splittable = d >= 2 * finest
        s = finest + torch.rand_like(d) * (d - 2 * finest).clamp(min=0.0)
        s = torch.where(splittable, s, torch.full_like(d, finest))
        first = shaped_like(net(x_t, t, s, cond), x_t).to(x_t.dtype)
        x_mid = x_t + expand_like(s, x_t) * first
        rest = (d - s).clamp(min=finest)
        second = net(x_mid, t + s, rest, cond).to(x_t.dtype)
        both = (expand_like(s, x_t) * first + expand_like(d - s, x_t) * second) / expand_like(
            d, x_t
        )
        return torch.where(expand_like(splittable, x_t), both, v)

    def difference_derivative(
        self,
        net: VelocityNet,
        x_t: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        tangent: torch.Tensor,
        cond: object,
    ) -> torch.Tensor:
        """``du/dt`` along ``(tangent, 1, -1)`` by a central difference of step ``fd_eps``, in
        fp32 (a bf16 difference of two close outputs would be noise)."""
        eps = self.fd_eps
        shift = eps * tangent
        with torch.autocast(x_t.device.type, enabled=False):
            ahead = net(x_t + shift, t + eps, d - eps, cond).float()
            behind = net(x_t - shift, t - eps, d + eps, cond).float()
        return (ahead - behind) / (2 * eps)

    def path_velocity(
        self, net: VelocityNet, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor, cond: object
    ) -> torch.Tensor:
        """The tangent the derivative moves ``x_t`` with (see ``tangent``), ``x_t``'s shape."""
        if self.tangent == "conditional":
            return v
        with torch.no_grad():  # under autocast the pass may come back in bf16
            velocity = net(x_t, t, torch.full_like(t, self.finest_d), cond)
        return shaped_like(velocity, x_t).to(x_t.dtype)

    @staticmethod
    def average_velocity_and_derivative(
        net: VelocityNet,
        x_t: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        v: torch.Tensor,
        cond: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``u(x_t, t, d)`` and its derivative along the path with the interval's end fixed:
        one forward-mode pass with tangent ``(v, 1, -1)``."""

        def u(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
            return net(x, start, length, cond)

        # Attention's fused kernels have no forward-mode derivative; the math kernel does. So
        # does not the fused multi-head attention that eval mode without gradient picks
        # (validation). Autocast would cast the weights but not the tangents, so the product
        # runs unautocast.
        tangents = (v, torch.ones_like(t), -torch.ones_like(d))
        with (
            sdpa_kernel(SDPBackend.MATH),
            torch.autocast(x_t.device.type, enabled=False),
            _no_attention_fastpath(),
        ):
            return torch.func.jvp(u, (x_t, t, d), tangents)

    def sample(
        self,
        net: VelocityNet,
        noise: torch.Tensor,
        cond: object = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        start: WarmStart | None = None,
    ) -> torch.Tensor:
        """``steps`` passes spent as ``sampler`` says (by default ``steps`` equal jumps with
        the average velocity over each), from ``noise`` or a warm ``start``; no fresh noise."""
        x, t0 = start_point(noise, start)
        jumps = uniform_step_sizes(self.budget(steps))
        schedule = interval_schedule(self.sampler, jumps, self.finest_d)
        return integrate(net, x, cond, *squeezed(*schedule, t0, self.finest_d), t0=t0)
