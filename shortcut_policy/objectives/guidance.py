"""Classifier-free guidance at flow-like steps, for sampling and for shortcut targets alike.

Guidance ``v_null + w (v_label - v_null)`` sharpens a small step's velocity towards the class.
Applied to a long shortcut jump it overshoots (Frans et al.), so it is applied per row, only
where the step size the network is told is at most the objective's ``finest_d``.
"""

from __future__ import annotations

import torch
from torch import nn

from shortcut_policy.objectives.conditioning import take_rows
from shortcut_policy.objectives.sampling import VelocityNet


def guided_rows(
    net: VelocityNet,
    v: torch.Tensor,
    x: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    cond: object,
    scale: float,
    finest_d: float,
) -> torch.Tensor:
    """``v = net(x, t, d, cond)`` with guidance ``scale`` on the rows whose ``d <= finest_d``.

    ``net`` must have ``null_condition(cond)`` (a class-conditional network); the unconditional
    velocity is computed for the guided rows only.
    """
    if scale == 1.0:  # before nonzero(), which blocks the host on a GPU
        return v
    rows = (d <= finest_d * 1.0001).nonzero().squeeze(1)
    if not len(rows):
        return v
    null_condition = getattr(net, "null_condition", None)  # an optional network capability
    if null_condition is None:
        raise ValueError(
            "guidance needs a class-conditional network (one with null_condition, e.g. "
            f"task=digits); {type(net).__name__} has none: set the guidance scale to 1"
        )
    null = net(x[rows], t[rows], d[rows], null_condition(take_rows(cond, rows)))
    v = v.clone()
    v[rows] = null + scale * (v[rows] - null)
    return v


class Guided(nn.Module):
    """A class-conditional network whose calls at flow-like steps are guided (see
    :func:`guided_rows`); longer steps get the plain conditional velocity."""

    def __init__(self, network: nn.Module, scale: float, finest_d: float) -> None:
        super().__init__()
        self.network, self.scale, self.finest_d = network, scale, finest_d

    def forward(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: object):
        v = self.network(x, t, d, cond)
        return guided_rows(self.network, v, x, t, d, cond, self.scale, self.finest_d)
