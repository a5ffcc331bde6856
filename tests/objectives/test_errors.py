"""The loss counts only the positions the network predicts (a given prefix adds nothing)."""

from __future__ import annotations

import pytest
import torch

from shortcut_policy.objectives import OBJECTIVES
from shortcut_policy.objectives.errors import row_errors


class PerPosition(torch.nn.Module):
    """A velocity net that sees each chunk position alone: ``(x, t, d) -> v`` per position, so
    changing the data at some positions cannot change the output at the others."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 2)

    def forward(self, x, t, d, cond=None):
        times = torch.stack([t, d], -1)[:, None].expand(-1, x.shape[1], -1)
        return self.layer(torch.cat([x, times.to(x.dtype)], -1))


def test_row_errors_average_over_the_free_positions_only():
    pred, target = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    target[0, :2] = 10.0  # row 0's first two positions are given: their error must not count
    free = torch.tensor([[False, False, True, True], [True, True, True, True]])
    torch.testing.assert_close(row_errors(pred, target, free), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(row_errors(pred, target)[1], torch.tensor(1.0))
    with pytest.raises(ValueError, match="free has shape"):
        row_errors(pred, target, free[:, :3])


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_ignores_what_lies_at_given_positions(name):
    """The data at given positions changes wildly; with ``free`` the loss does not move, and
    without it it does (so the test can fail)."""
    net, objective = PerPosition(), OBJECTIVES[name]()
    x1 = torch.randn(8, 6, 2, generator=torch.Generator().manual_seed(1))
    free = torch.ones(8, 6, dtype=torch.bool)
    free[::2, :3] = False  # every other row is given its first three actions
    moved = x1.clone()
    moved[~free] += 50.0

    def loss(data, mask):
        torch.manual_seed(2)  # the objective's own draws (times, noise) repeat exactly
        value, metrics = objective.loss(net, data, None, net, None, mask)
        # MeanFlow's weighted loss is near 1 whatever the error; its unweighted mse is not.
        return value, metrics.get("mse", value)

    torch.testing.assert_close(loss(moved, free), loss(x1, free))
    assert abs(loss(moved, None)[1] - loss(x1, None)[1]) > 1.0
