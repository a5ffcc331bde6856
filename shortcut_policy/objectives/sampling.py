"""Step schedules and the Euler integrator shared by flow matching and shortcut sampling.

Convention (whole repo): ``t = 0`` is noise, ``t = 1`` is data. A step of size ``dt`` moves
``x_{t+dt} = x_t + dt * v(x_t, t, d)`` where ``d`` is the step size the network is *told*.
For a shortcut model ``d == dt``; for a flow-matching model ``d`` is always the finest step.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

# net(x, t, d, cond) -> velocity with the shape of x; t and d have shape (B,).
VelocityNet = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, object], torch.Tensor]


class BudgetError(ValueError):
    """A step budget (network passes per sample) that the objective cannot take."""


def step_budget(steps: object, default: int, most: int | None, method: str) -> int:
    """The network passes a caller asked for, checked: ``default`` for None, else an integer
    in ``[1, most]`` (``most`` None: no upper bound). Anything else (0, 1.5, "4", True) raises a
    :class:`BudgetError` that names the valid range, at every entry point alike."""
    if steps is None:
        steps = default
    valid = f"[1, {most}]" if most is not None else "1 or more"
    integral = isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
    if not integral or steps < 1 or (most is not None and steps > most):
        raise BudgetError(
            f"steps (network passes per sample) must be an integer in {valid} for {method}, "
            f"got {steps!r} ({type(steps).__name__})"
        )
    return int(steps)


def shortcut_step_sizes(steps: int, finest_steps: int) -> list[float]:
    """Powers-of-two step sizes that sum to 1, using exactly ``steps`` network evaluations.

    With ``2^k <= steps < 2^(k+1)`` start from ``2^k`` steps of ``2^-k`` and halve the last
    ``steps - 2^k`` of them (finer steps near the data end). Examples with ``finest_steps=128``:
    ``1 -> [1]``, ``3 -> [1/2, 1/4, 1/4]``, ``4 -> [1/4]*4``, ``128 -> [1/128]*128``.
    Every size is at least ``1/finest_steps``, so the network only sees trained step sizes.
    """
    if finest_steps < 1 or finest_steps & (finest_steps - 1):
        raise ValueError(f"finest_steps must be a power of two, got {finest_steps}")
    if not 1 <= steps <= finest_steps:
        raise ValueError(
            f"steps must be an integer in [1, {finest_steps}] for a shortcut model, got {steps}"
        )
    base = 1 << (steps.bit_length() - 1)
    n_split = steps - base
    coarse = [1.0 / base] * (base - n_split)
    fine = [0.5 / base] * (2 * n_split)
    return coarse + fine


# How a network told the step size ``d`` spends N passes (see :func:`interval_schedule`).
SAMPLERS = ("jumps", "euler", "jump_euler")


def interval_schedule(
    sampler: str, jump_sizes: Sequence[float], finest_d: float
) -> tuple[list[float], list[float]]:
    """Step sizes and the ``d`` told per step, for an interval network taking N passes.

    ``jump_sizes`` are the objective's own N jumps (summing to 1). The samplers:

    * ``"jumps"``: those jumps, each told its own length (average velocity over the jump);
    * ``"euler"``: N equal Euler steps of the instantaneous velocity, told ``finest_d`` (the
      network's flow-matching output: flow matching's sampler on the same network);
    * ``"jump_euler"``: one jump to ``t = 1/2`` (told ``1/2``), then N - 1 equal Euler steps;
      N = 1 is a single jump of 1.

    Returns ``(step_sizes, told_step_sizes)``, both of length N.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    steps = len(jump_sizes)
    if sampler == "jumps":
        return list(jump_sizes), list(jump_sizes)
    if sampler == "euler":
        return uniform_step_sizes(steps), [finest_d] * steps
    if steps == 1:
        return [1.0], [1.0]
    fine = [0.5 / (steps - 1)] * (steps - 1)
    return [0.5, *fine], [0.5, *([finest_d] * (steps - 1))]


def uniform_step_sizes(steps: int) -> list[float]:
    """``steps`` equal Euler steps of ``1/steps`` (flow matching accepts any positive count)."""
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return [1.0 / steps] * steps


@torch.no_grad()
def integrate(
    net: VelocityNet,
    x: torch.Tensor,
    cond: object,
    step_sizes: Sequence[float],
    told_step_sizes: Sequence[float] | None = None,
    t0: float = 0.0,
) -> torch.Tensor:
    """Euler-integrate from ``x`` at time ``t0`` (0: noise) to data (t=1).

    Args:
        net: velocity network ``net(x, t, d, cond)``.
        x: the starting sample, any shape ``(B, ...)``: noise at ``t0 = 0``.
        cond: conditioning passed through to ``net`` unchanged.
        step_sizes: the actual step sizes, summing to ``1 - t0`` (one network pass each).
        told_step_sizes: the ``d`` given to the network per step; defaults to ``step_sizes``.
        t0: the time ``x`` is at (a warm start, see :func:`start_point`).

    Returns:
        The sample at t = 1, same shape as ``x``.
    """
    told = step_sizes if told_step_sizes is None else told_step_sizes
    batch = x.shape[0]
    t = t0
    for dt, d in zip(step_sizes, told, strict=True):
        t_vec = torch.full((batch,), t, device=x.device, dtype=x.dtype)
        d_vec = torch.full((batch,), d, device=x.device, dtype=x.dtype)
        x = x + dt * net(x, t_vec, d_vec, cond)
        t += dt
    return x


# A warm start ``(t0, guess)``: sampling begins at time ``t0`` on the path from the noise to
# ``guess``, a sample in normalized units shaped like the noise (e.g. the unexecuted tail of
# the chunk being replaced: One-Step Flow Policy, arXiv 2603.12480).
WarmStart = tuple[float, torch.Tensor]


def start_point(
    noise: torch.Tensor, start: WarmStart | None, path_eps: float = 0.0
) -> tuple[torch.Tensor, float]:
    """``(x, t0)``: the noise at ``t0 = 0`` without a warm start, else the point at ``t0`` on
    the straight path (``path_eps`` as in :mod:`flow`) from the noise to the guess."""
    if start is None:
        return noise, 0.0
    t0, guess = float(start[0]), start[1]
    if not 0.0 < t0 < 1.0:
        raise ValueError(f"a warm start's time must be in (0, 1), got {t0}")
    if guess.shape != noise.shape:
        raise ValueError(f"a warm start's guess must be shaped {tuple(noise.shape)}")
    return (1.0 - (1.0 - path_eps) * t0) * noise + t0 * guess.to(noise.dtype), t0


def squeezed(
    step_sizes: Sequence[float], told: Sequence[float], t0: float, finest_d: float
) -> tuple[list[float], list[float]]:
    """A schedule over ``[0, 1]`` squeezed into ``[t0, 1]``: every step ``1 - t0`` times as
    long, a jump told its new length, a flow step still told ``finest_d`` (never less)."""
    span = 1.0 - t0
    return [s * span for s in step_sizes], [max(d * span, finest_d) for d in told]


def expand_like(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-row vector ``(B,)`` as ``(B, 1, ..., 1)`` so it broadcasts against ``x``."""
    return values.view(-1, *([1] * (x.dim() - 1)))
