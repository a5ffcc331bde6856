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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from shortcut_policy.objectives.flow import interpolate
from shortcut_policy.objectives.sampling import (
    VelocityNet,
    expand_like,
    integrate,
    step_budget,
    uniform_step_sizes,
)

TANGENTS = ("conditional", "predicted")


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
        default_steps: network passes per sample when the caller gives none.
    """

    finest_steps: int = 128
    flow_share: float = 0.75
    time_mu: float = 0.0
    time_sigma: float = 1.0
    norm_p: float = 1.0
    norm_eps: float = 1e-3
    tangent: str = "predicted"
    default_steps: int = 1
    name: str = "meanflow"
    teacher_decay = 0.0  # no teacher (the objective contract)

    def __post_init__(self) -> None:
        if self.finest_steps < 1:
            raise ValueError(f"finest_steps must be >= 1, got {self.finest_steps}")
        if not 0.0 <= self.flow_share <= 1.0:
            raise ValueError(f"flow_share must lie in [0, 1], got {self.flow_share}")
        if self.time_sigma <= 0 or self.norm_eps <= 0 or self.norm_p < 0:
            raise ValueError("time_sigma and norm_eps must be > 0 and norm_p >= 0")
        if self.tangent not in TANGENTS:
            raise ValueError(f"tangent must be one of {TANGENTS}, got {self.tangent!r}")

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

        The first ``round(B * flow_share)`` rows have ``r = t`` (so ``d = 1/M``).
        """
        times = torch.sigmoid(self.time_mu + self.time_sigma * torch.randn(2, batch, device=device))
        start, end = times.min(0).values, times.max(0).values
        n_flow = round(batch * self.flow_share)
        end = torch.cat([start[:n_flow], end[n_flow:]])
        d = (end - start).clamp(min=self.finest_d)
        return torch.minimum(start, 1.0 - d), d

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MeanFlow loss on ``x1: (B, ...)``; the target is built from ``net`` itself (no
        teacher). Returns the weighted loss and floats for logging (``mse``: unweighted)."""
        x0 = torch.randn_like(x1)
        t, d = self.intervals(x1.shape[0], x1.device)
        x_t = interpolate(x0, x1, t, 0.0)
        v = x1 - x0
        pred, dudt = self.average_velocity_and_derivative(
            net, x_t, t, d, self.path_velocity(net, x_t, t, v, cond), cond
        )
        shaped_like(pred, x_t)
        target = (v + expand_like(d, v) * dudt).detach()
        err = ((pred - target) ** 2).flatten(1).mean(1)
        weight = (err.detach() + self.norm_eps) ** -self.norm_p
        loss = (weight * err).mean()
        return loss, {"loss": loss.detach(), "mse": err.detach().mean()}

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
    ) -> torch.Tensor:
        """``steps`` equal jumps with the average velocity over each; no fresh noise."""
        return integrate(net, noise, cond, uniform_step_sizes(self.budget(steps)))
