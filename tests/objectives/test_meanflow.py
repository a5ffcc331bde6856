import pytest
import torch

from shortcut_policy.models.dit import DiT
from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import MeanFlow, build_objective
from shortcut_policy.objectives.sampling import BudgetError
from tests.conftest import make_config


def small_net():
    return ConditionalUnet1D(2, 3, down_dims=(16, 32), kernel_size=3, embed_dim=16)


def test_the_jvp_term_equals_a_finite_difference_along_the_path():
    torch.manual_seed(0)
    net = small_net()
    x, v = torch.randn(3, 8, 2), torch.randn(3, 8, 2)
    t, d = torch.tensor([0.1, 0.4, 0.7]), torch.tensor([0.5, 0.25, 0.2])
    cond = torch.randn(3, 3)
    _, dudt = MeanFlow.average_velocity_and_derivative(net, x, t, d, v, cond)
    # The start moves along the path, the end t + d stays put. The time embedding oscillates at
    # up to ~1000 rad per unit of t, so the step is small.
    eps = 1e-5
    with torch.no_grad():
        ahead = net(x + eps * v, t + eps, d - eps, cond)
        behind = net(x - eps * v, t - eps, d + eps, cond)
    finite = (ahead - behind) / (2 * eps)
    scale = dudt.abs().max()
    assert scale > 0.1  # a real derivative, not zeros
    assert (dudt - finite).abs().max() < 1e-2 * scale


class TimeRamp(torch.nn.Module):
    """v(x, s) = a s everywhere: its average over [t, t + d] is a (t + d / 2)."""

    def forward(self, x, t, d, cond):
        return (t + d / 2).view(-1, 1, 1) * torch.ones_like(x)


def test_the_identity_holds_for_a_known_average_velocity():
    x, t = torch.zeros(4, 5, 1), torch.tensor([0.0, 0.2, 0.5, 0.3])
    d = torch.tensor([1.0, 0.5, 0.25, 0.7])
    v = t.view(-1, 1, 1) * torch.ones_like(x)  # the instantaneous velocity at t
    u, dudt = MeanFlow.average_velocity_and_derivative(TimeRamp(), x, t, d, v, None)
    torch.testing.assert_close(u, v + d.view(-1, 1, 1) * dudt)  # u = v + d du/dt


class PointMassField(torch.nn.Module):
    """The exact average velocity when all data is one point c: straight lines into c."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, t, d, cond):
        return (self.c - x) / (1.0 - t).view(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("tangent", ["conditional", "predicted"])
def test_the_loss_is_zero_where_the_average_velocity_is_exact(tangent):
    torch.manual_seed(0)
    c = torch.tensor([0.5, -1.0])
    x1 = c.expand(64, 16, 2).clone()
    objective = MeanFlow(norm_p=0.0, tangent=tangent)
    loss, metrics = objective.loss(PointMassField(c), x1)
    assert metrics["mse"] < 1e-8 and loss.item() < 1e-8
    _, off = objective.loss(PointMassField(c + 0.1), x1)
    assert off["mse"] > 1e-3  # and not zero elsewhere


class Recorder(torch.nn.Module):
    """A fixed linear field that records the step sizes it is asked for."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def forward(self, x, t, d, cond):
        self.asked.append(d.detach().clone())
        return 0.5 * x + t.view(-1, 1, 1)


def test_the_predicted_tangent_is_the_networks_finest_step_velocity():
    torch.manual_seed(0)
    net, x1 = Recorder(), torch.randn(8, 4, 1)
    MeanFlow(tangent="predicted", finest_steps=64).loss(net, x1)
    # One extra pass at the finest step (the instantaneous velocity), then the JVP pass.
    assert len(net.asked) == 2 and torch.all(net.asked[0] == 1 / 64)
    MeanFlow(tangent="conditional").loss(net, x1)
    assert len(net.asked) == 3  # the paper's tangent needs no extra pass


def test_intervals_cover_the_flow_share_and_stay_inside_zero_one():
    torch.manual_seed(0)
    t, d = MeanFlow(finest_steps=128, flow_share=0.75).intervals(400, torch.device("cpu"))
    assert torch.all(d >= 1 / 128 - 1e-7) and torch.all(t >= 0) and torch.all(t + d <= 1 + 1e-6)
    assert torch.all(d[:300] == 1 / 128) and (d[300:] > 1 / 128).float().mean() > 0.9


@pytest.mark.parametrize("make", ["unet", "dit"])
def test_every_budget_runs_and_the_loss_trains_both_networks(make):
    torch.manual_seed(0)
    if make == "unet":
        net, x1, cond = small_net(), torch.randn(6, 8, 2), torch.randn(6, 3)
    else:
        net = DiT(8, 1, 10, patch_size=2, hidden_size=32, depth=1, num_heads=2)
        x1, cond = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    objective = MeanFlow(finest_steps=8)
    loss, _ = objective.loss(net, x1, cond)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    for steps in range(1, 9):
        assert objective.sample(net, torch.randn_like(x1), cond, steps=steps).shape == x1.shape


def test_the_loss_runs_in_eval_mode_without_gradient_as_validation_does():
    # Eval mode without gradient picks multi-head attention's fused path, which has no
    # forward-mode derivative; validation of a MeanFlow DiT crashed there at its first val step.
    net = DiT(8, 1, 10, patch_size=2, hidden_size=32, depth=1, num_heads=2).eval()
    with torch.no_grad():
        loss, _ = MeanFlow(finest_steps=8).loss(
            net, torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
        )
    assert torch.isfinite(loss)
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on afterwards


def test_an_unknown_tangent_is_named():
    with pytest.raises(ValueError, match="tangent must be one of"):
        MeanFlow(tangent="marginal")


@pytest.mark.parametrize("steps", [0, 9, 1.5, "2"])
def test_bad_budgets_are_refused(steps):
    with pytest.raises(BudgetError, match=r"integer in \[1, 8\] for MeanFlow"):
        MeanFlow(finest_steps=8).sample(small_net(), torch.randn(1, 8, 2), torch.randn(1, 3), steps)


class OneDimension(torch.nn.Module):
    def forward(self, x, t, d, cond):
        return x[..., :1]


@pytest.mark.parametrize("tangent", ["conditional", "predicted"])
def test_a_network_built_for_other_data_is_named(tangent):
    with pytest.raises(ValueError, match=r"returns \(2, 8, 1\) for samples of \(2, 8, 3\)"):
        MeanFlow(tangent=tangent).loss(OneDimension(), torch.randn(2, 8, 3))


def test_built_from_its_config():
    objective = build_objective({"name": "meanflow", "flow_share": 0.5})
    assert isinstance(objective, MeanFlow) and objective.flow_share == 0.5
    with pytest.raises(ValueError, match="flow_share must lie in"):
        MeanFlow(flow_share=2.0)


@pytest.mark.parametrize("task", ["push_t", "digits"])
def test_objective_meanflow_embeds_t_and_d_smoothly_on_either_network(task):
    config = make_config(f"task={task}", "objective=meanflow")
    assert config.model.step_embedding == "length" and config.model.time_scale == 1.0
    assert config.objective.tangent == "predicted"
    mine = make_config(f"task={task}", "objective=meanflow", "model.time_scale=1000")
    assert mine.model.time_scale == 1000  # the command line still wins
    assert "time_scale" not in make_config(f"task={task}", "objective=shortcut").model
