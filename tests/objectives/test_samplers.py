"""How an interval network spends N passes: jumps, Euler steps, or a jump then Euler steps."""

import pytest
import torch

from shortcut_policy.objectives import FlowMatching, MeanFlow, Shortcut, with_sampler
from shortcut_policy.objectives.sampling import BudgetError, interval_schedule


class IgnoresD(torch.nn.Module):
    """A nonlinear field of (x, t) that ignores d, recording the d it is told."""

    def __init__(self):
        super().__init__()
        self.told = []

    def forward(self, x, t, d, cond):
        self.told.append(d[0].item())
        return torch.sin(3 * x) + t.view(-1, 1, 1)


@pytest.mark.parametrize("make", [Shortcut, MeanFlow])
@pytest.mark.parametrize("steps", [1, 2, 3, 8])
def test_euler_on_a_network_that_ignores_d_is_flow_matchings_euler(make, steps):
    noise = torch.randn(4, 6, 2)
    flow = FlowMatching().sample(IgnoresD(), noise, None, steps)
    net = IgnoresD()
    ours = make(sampler="euler").sample(net, noise, None, steps)
    torch.testing.assert_close(ours, flow)
    assert net.told == [1 / 128] * steps  # the instantaneous velocity: the finest d


@pytest.mark.parametrize("make", [Shortcut, MeanFlow])
@pytest.mark.parametrize("sampler", ["jumps", "euler", "jump_euler"])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 16])
def test_every_sampler_takes_exactly_the_budget_and_reaches_t_1(make, sampler, steps):
    net = IgnoresD()
    make(sampler=sampler).sample(net, torch.zeros(1, 2, 1), None, steps)
    assert len(net.told) == steps
    sizes, told = interval_schedule(sampler, [1.0 / steps] * steps, 1 / 128)
    assert sum(sizes) == pytest.approx(1.0) and len(told) == steps


def test_jump_euler_jumps_to_one_half_then_takes_finest_steps():
    sizes, told = interval_schedule("jump_euler", [0.25] * 4, 1 / 128)
    assert sizes == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6])
    assert told == pytest.approx([0.5, 1 / 128, 1 / 128, 1 / 128])
    assert interval_schedule("jump_euler", [1.0], 1 / 128) == ([1.0], [1.0])


@pytest.mark.parametrize("make", [Shortcut, MeanFlow])
@pytest.mark.parametrize("sampler", ["euler", "jump_euler"])
@pytest.mark.parametrize("steps", [0, 129, 1.5])
def test_budgets_are_validated_whatever_the_sampler(make, sampler, steps):
    with pytest.raises(BudgetError, match="must be an integer in"):
        make(sampler=sampler).sample(IgnoresD(), torch.zeros(1, 2), None, steps)


def test_samplers_are_named_and_only_interval_networks_take_one():
    with pytest.raises(ValueError, match="sampler must be one of"):
        Shortcut(sampler="heun")
    with pytest.raises(ValueError, match="sampler must be one of"):
        with_sampler(MeanFlow(), "heun")
    with pytest.raises(ValueError, match="applies to networks told the step size"):
        with_sampler(FlowMatching(), "euler")
    assert with_sampler(MeanFlow(), "euler").sampler == "euler"
    assert with_sampler(FlowMatching(), None) == FlowMatching()
