"""Flow matching (rectified flow) on the straight path from noise to data.

``x_t = (1 - (1 - eps) t) x0 + t x1`` with ``x0 ~ N(0, I)`` noise and ``x1`` data; the regression
target is the path's velocity ``x1 - (1 - eps) x0``. ``eps = 0`` is the plain straight path.
The network is always told the finest step ``d = 1 / finest_steps``, so a flow model and a
shortcut model share one network class and one sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shortcut_policy.objectives.errors import row_errors
from shortcut_policy.objectives.sampling import (
    VelocityNet,
    WarmStart,
    expand_like,
    integrate,
    squeezed,
    start_point,
    step_budget,
    uniform_step_sizes,
)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
    """Point on the path at time ``t`` (shape ``(B,)``), same shape as ``x0``."""
    t = expand_like(t, x1)
    return (1.0 - (1.0 - eps) * t) * x0 + t * x1


def path_velocity(x0: torch.Tensor, x1: torch.Tensor, eps: float) -> torch.Tensor:
    """The path's constant velocity ``dx_t/dt``, same shape as ``x0``."""
    return x1 - (1.0 - eps) * x0


def flow_rows(
    x1: torch.Tensor, finest_steps: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flow-matching training rows for data ``x1``: fresh noise, ``t = k / M``, ``d = 1 / M``.

    Returns ``(x_t, t, d, target)``; ``t`` and ``d`` have shape ``(B,)``.
    """
    x0 = torch.randn_like(x1)
    batch = x1.shape[0]
    k = torch.randint(0, finest_steps, (batch,), device=x1.device)
    t = k.to(x1.dtype) / finest_steps
    d = torch.full_like(t, 1.0 / finest_steps)
    return interpolate(x0, x1, t, eps), t, d, path_velocity(x0, x1, eps)


@dataclass
class FlowMatching:
    """Plain flow matching: every row is a flow row at the finest step size.

    Attributes:
        finest_steps: M, the grid of ``t`` and the step size ``1/M`` told to the network.
        path_eps: ``eps`` in the interpolation (0 = straight path ending exactly at noise).
        default_steps: Euler steps used when a caller gives no budget.
    """

    finest_steps: int = 128
    path_eps: float = 0.0
    default_steps: int = 1
    name: str = "flow"
    teacher_decay = 0.0  # no teacher (the objective contract)

    @property
    def finest_d(self) -> float:
        return 1.0 / self.finest_steps

    def teacher_rows(self, batch: int) -> int:
        return 0

    def budget(self, steps: object = None) -> int:
        """``steps`` checked (any positive integer of Euler steps; None: ``default_steps``)."""
        return step_budget(steps, self.default_steps, None, "flow matching")

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
        free: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared velocity error over all rows (``free``: the positions that count, see
        :func:`row_errors`); ``teacher`` is unused (same signature)."""
        x_t, t, d, target = flow_rows(x1, self.finest_steps, self.path_eps)
        loss = row_errors(net(x_t, t, d, cond), target, free).mean()
        return loss, {"loss": loss.detach(), "loss_flow": loss.detach()}

    def sample(
        self,
        net: VelocityNet,
        noise: torch.Tensor,
        cond: object = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        start: WarmStart | None = None,
    ) -> torch.Tensor:
        """``steps`` equal Euler steps from ``noise`` (t=0), or from ``start``'s point on the
        path to its guess, to data (t=1); deterministic."""
        x, t0 = start_point(noise, start, self.path_eps)
        sizes = uniform_step_sizes(self.budget(steps))
        told = [self.finest_d] * len(sizes)
        return integrate(net, x, cond, *squeezed(sizes, told, t0, self.finest_d), t0=t0)
