import pytest
import torch

from shortcut_policy.objectives import DDPM, FlowMatching, Shortcut
from shortcut_policy.objectives.sampling import shortcut_step_sizes


@pytest.mark.parametrize(
    "steps, expected",
    [
        (1, [1.0]),
        (2, [0.5, 0.5]),
        (3, [0.5, 0.25, 0.25]),
        (4, [0.25] * 4),
        (5, [0.25, 0.25, 0.25, 0.125, 0.125]),
        (128, [1 / 128] * 128),
    ],
)
def test_shortcut_step_sizes_are_powers_of_two_summing_to_one(steps, expected):
    sizes = shortcut_step_sizes(steps, 128)
    assert sizes == expected
    assert len(sizes) == steps


@pytest.mark.parametrize("steps", range(1, 129))
def test_every_budget_uses_exactly_that_many_trained_step_sizes(steps):
    sizes = shortcut_step_sizes(steps, 128)
    assert len(sizes) == steps and abs(sum(sizes) - 1) < 1e-12
    assert min(sizes) >= 1 / 128


@pytest.mark.parametrize("steps", [0, 129])
def test_budget_out_of_range_is_an_error(steps):
    with pytest.raises(ValueError, match="steps must be"):
        shortcut_step_sizes(steps, 128)


class CountingConstantVelocity(torch.nn.Module):
    """v(x, t, d) = c regardless of inputs; counts calls and records the d it was told."""

    def __init__(self, velocity: torch.Tensor):
        super().__init__()
        self.velocity = velocity
        self.calls = 0
        self.told = []

    def forward(self, x, t, d, cond):
        self.calls += 1
        self.told.append(d[0].item())
        return self.velocity.expand_as(x)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 128])
@pytest.mark.parametrize("objective", [Shortcut(), FlowMatching()])
def test_constant_velocity_integrates_exactly(objective, steps):
    velocity = torch.tensor([0.5, -2.0])
    net = CountingConstantVelocity(velocity)
    noise = torch.randn(3, 4, 2)
    out = objective.sample(net, noise, None, steps)
    torch.testing.assert_close(out, noise + velocity, rtol=0, atol=1e-5)
    assert net.calls == steps


def test_flow_sampler_always_tells_the_finest_step_and_shortcut_the_true_step():
    net = CountingConstantVelocity(torch.zeros(1))
    FlowMatching(finest_steps=128).sample(net, torch.zeros(1, 2), None, 3)
    assert net.told == [1 / 128] * 3
    net.told = []
    Shortcut(finest_steps=128).sample(net, torch.zeros(1, 2), None, 3)
    assert net.told == [0.5, 0.25, 0.25]


def test_ddim_counts_passes():
    net = CountingConstantVelocity(torch.zeros(1))
    DDPM().sample(net, torch.zeros(2, 3), None, 7)
    assert net.calls == 7
