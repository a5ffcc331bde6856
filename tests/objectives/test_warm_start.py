"""A warm start: sampling begins part-way along the path, at the point between the noise and a
guess (the ``warm`` chunk join), with the objective's own steps squeezed into what is left."""

import pytest
import torch

from shortcut_policy.objectives import DDPM, FlowMatching, MeanFlow, Shortcut

TARGET = torch.tensor([0.7, -1.3])


class TowardTarget(torch.nn.Module):
    """The exact velocity of the straight path to one data point ``TARGET``: from any ``x`` at
    ``t`` it is ``(TARGET - x) / (1 - t)``, so any correct schedule ends exactly on it. Records
    the ``(t, d)`` of every pass."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, d, cond):
        self.calls.append((round(t[0].item(), 7), round(d[0].item(), 7)))
        return (TARGET - x) / (1 - t).view(-1, 1, 1)


OBJECTIVES = [FlowMatching, Shortcut, MeanFlow]


@pytest.mark.parametrize("make", OBJECTIVES)
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_a_warm_start_begins_at_t0_and_still_reaches_the_data(make, steps):
    noise, guess = torch.randn(3, 8, 2), torch.zeros(3, 8, 2)
    net = TowardTarget()
    out = make().sample(net, noise, None, steps, start=(0.5, guess))
    torch.testing.assert_close(out, TARGET.expand_as(out))
    times = [t for t, _ in net.calls]
    assert len(times) == steps and times[0] == 0.5
    assert times == sorted(times) and times[-1] < 1


@pytest.mark.parametrize("steps", [1, 2])
def test_a_shortcut_jump_from_t0_is_told_its_squeezed_length(steps):
    noise, start = torch.randn(1, 4, 2), (0.5, torch.zeros(1, 4, 2))
    net = TowardTarget()
    Shortcut().sample(net, noise, None, steps, start=start)
    assert [d for _, d in net.calls] == [0.5 / steps] * steps  # trained step sizes
    flow = TowardTarget()
    FlowMatching().sample(flow, noise, None, steps, start=start)
    assert [d for _, d in flow.calls] == [1 / 128] * steps  # flow is always told the finest d


def test_the_starting_point_sits_between_noise_and_guess():
    """A network that says 'stay' returns the starting point: (1 - t0) noise + t0 guess."""
    noise, guess = torch.randn(2, 4, 2), torch.randn(2, 4, 2)
    stay = lambda x, t, d, cond: torch.zeros_like(x)  # noqa: E731
    out = FlowMatching().sample(stay, noise, None, 1, start=(0.75, guess))
    torch.testing.assert_close(out, 0.25 * noise + 0.75 * guess)


def test_without_a_start_sampling_is_unchanged():
    noise = torch.randn(2, 4, 2)
    net = TowardTarget()
    out = Shortcut().sample(net, noise, None, 2)
    assert net.calls == [(0.0, 0.5), (0.5, 0.5)]
    torch.testing.assert_close(out, TARGET.expand_as(out))


def test_starts_that_cannot_work_are_refused_by_name():
    noise, guess = torch.randn(1, 4, 2), torch.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="t0 = 1/2, 3/4"):
        Shortcut().sample(TowardTarget(), noise, None, 1, start=(0.3, guess))
    with pytest.raises(ValueError, match=r"time must be in \(0, 1\)"):
        FlowMatching().sample(TowardTarget(), noise, None, 1, start=(1.0, guess))
    with pytest.raises(ValueError, match="guess must be shaped"):
        MeanFlow().sample(TowardTarget(), noise, None, 1, start=(0.5, guess[:, :2]))
    with pytest.raises(ValueError, match="DDPM/DDIM has no warm start"):
        DDPM().sample(TowardTarget(), noise, None, 1, start=(0.5, guess))


@pytest.mark.parametrize(
    "make, sampler, steps, calls",
    [
        (MeanFlow, "jumps", 2, [(0.5, 0.25), (0.75, 0.25)]),  # each jump told its length
        (MeanFlow, "euler", 2, [(0.5, 1 / 128), (0.75, 1 / 128)]),
        (Shortcut, "jump_euler", 3, [(0.5, 0.25), (0.75, 1 / 128), (0.875, 1 / 128)]),
    ],
)
def test_every_sampler_is_squeezed_into_what_is_left_of_the_path(make, sampler, steps, calls):
    net = TowardTarget()
    start = (0.5, torch.zeros(1, 4, 2))
    out = make(sampler=sampler).sample(net, torch.randn(1, 4, 2), None, steps, start=start)
    assert net.calls == [(t, round(d, 7)) for t, d in calls]
    torch.testing.assert_close(out, TARGET.expand_as(out))
