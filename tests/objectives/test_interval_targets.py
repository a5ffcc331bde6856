"""MeanFlow's JVP-free consistency targets: interval splitting and the finite difference."""

import pytest
import torch

from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import MeanFlow, build_objective


def smooth_net():
    """A small U-Net embedding t and d smoothly, as objective=meanflow configures it."""
    return ConditionalUnet1D(
        2, 3, down_dims=(16, 32), kernel_size=3, embed_dim=16, time_scale=1.0,
        step_embedding="length",
    )  # fmt: skip


class Recorder(torch.nn.Module):
    """A fixed nonlinear field that records every call's inputs and output."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, d, cond):
        out = torch.tanh(x) * (1 + t).view(-1, 1, 1) - d.view(-1, 1, 1)
        self.calls.append((x.clone(), t.clone(), d.clone(), out.clone()))
        return out


def test_the_split_target_equals_the_two_sub_jumps():
    torch.manual_seed(0)
    net, objective = Recorder(), MeanFlow(consistency="split", finest_steps=16)
    x, v = torch.randn(6, 4, 2), torch.randn(6, 4, 2)
    t = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.05, 0.5])
    d = torch.tensor([1.0, 0.5, 0.8, 0.25, 0.125, 0.5])
    target = objective.split_target(net, x, t, d, v, None)
    (x_a, t_a, s, first), (x_b, t_b, rest, second) = net.calls
    w = lambda a: a.view(-1, 1, 1)  # noqa: E731
    assert torch.all(s >= 1 / 16) and torch.all(s <= d - 1 / 16 + 1e-6)
    torch.testing.assert_close(x_b, x + w(s) * first)  # the second jump starts where s ends
    torch.testing.assert_close(t_b, t + s)
    torch.testing.assert_close(rest, d - s)
    torch.testing.assert_close(target, (w(s) * first + w(d - s) * second) / w(d))
    # d * u over the whole interval is the displacement of the two jumps together.
    torch.testing.assert_close(x + w(d) * target, x_b + w(rest) * second)


def test_an_interval_too_short_to_split_keeps_the_flow_target():
    net, objective = Recorder(), MeanFlow(consistency="split", finest_steps=16)
    x, v = torch.randn(2, 4, 2), torch.randn(2, 4, 2)
    d = torch.tensor([1.5 / 16, 1.0])
    target = objective.split_target(net, x, torch.zeros(2), d, v, None)
    torch.testing.assert_close(target[0], v[0])
    assert not torch.allclose(target[1], v[1])


class PointMassField(torch.nn.Module):
    """The exact average velocity when all data is one point c: straight lines into c."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, t, d, cond):
        return (self.c - x) / (1.0 - t).view(-1, 1, 1)


@pytest.mark.parametrize("consistency", ["split", "difference"])
def test_the_loss_vanishes_only_at_the_exact_average_velocity(consistency):
    torch.manual_seed(0)
    c = torch.tensor([0.5, -1.0])
    x1 = c.expand(64, 16, 2).clone()
    objective = MeanFlow(consistency=consistency, norm_p=0.0, tangent="conditional")
    _, exact = objective.loss(PointMassField(c), x1)
    _, off = objective.loss(PointMassField(c + 0.1), x1)
    assert exact["mse"] < 1e-6 and off["mse"] > 1e-3


def test_the_finite_difference_matches_the_jvp():
    torch.manual_seed(0)
    net, objective = smooth_net(), MeanFlow(consistency="difference")
    x, v, cond = torch.randn(3, 8, 2), torch.randn(3, 8, 2), torch.randn(3, 3)
    t, d = torch.tensor([0.1, 0.4, 0.7]), torch.tensor([0.5, 0.25, 0.2])
    _, exact = MeanFlow.average_velocity_and_derivative(net, x, t, d, v, cond)
    with torch.no_grad():
        approx = objective.difference_derivative(net, x, t, d, v, cond)
    assert exact.abs().max() > 0.01  # a real derivative, not zeros
    assert (approx - exact).abs().max() < 1e-2 * exact.abs().max()


@pytest.mark.parametrize("consistency", ["split", "difference"])
def test_flow_rows_get_x1_minus_x0_and_only_interval_rows_pay_extra_passes(consistency):
    torch.manual_seed(0)
    net = Recorder()
    objective = MeanFlow(consistency=consistency, flow_share=0.5, tangent="conditional")
    objective.loss(net, torch.randn(8, 4, 2))
    *extra, prediction = net.calls
    assert len(extra) == 2 and all(len(call[0]) == 4 for call in extra)
    assert len(prediction[0]) == 8  # one pass with gradient, over the whole batch


@pytest.mark.parametrize("consistency", ["split", "difference"])
def test_jvp_free_targets_train_a_real_network(consistency):
    torch.manual_seed(0)
    net, x1 = smooth_net(), torch.randn(16, 8, 2)
    objective = build_objective({"name": "meanflow", "consistency": consistency})
    loss, metrics = objective.loss(net, x1, torch.randn(16, 3))
    loss.backward()
    assert torch.isfinite(loss) and "mse" in metrics
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("consistency", "jvp2", "consistency must be one of"), ("fd_eps", 0.1, "fd_eps must lie")],
)
def test_bad_consistency_fields_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        MeanFlow(**{field: value})


def test_full_share_rows_span_the_whole_path():
    torch.manual_seed(0)
    objective = MeanFlow(flow_share=0.5, full_share=0.25)
    t, d = objective.intervals(16, torch.device("cpu"))
    assert torch.all(d[:8] == 1 / 128)  # flow rows first
    assert torch.all(t[12:] == 0) and torch.all(d[12:] == 1)  # then the whole path
    assert torch.all(d[8:12] < 1) and torch.all(t + d <= 1 + 1e-6)
    with pytest.raises(ValueError, match="full_share must lie in"):
        MeanFlow(flow_share=0.75, full_share=0.5)
