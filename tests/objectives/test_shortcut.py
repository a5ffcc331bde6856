import pytest
import torch

from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import FlowMatching, Shortcut
from shortcut_policy.objectives.flow import interpolate


def small_net(cond_dim=3):
    return ConditionalUnet1D(2, cond_dim, down_dims=(16, 32), kernel_size=3, embed_dim=16)


def test_consistency_target_equals_two_half_steps_of_the_model():
    net = small_net()
    objective = Shortcut(target_clip=1e6)
    x = torch.randn(5, 8, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 0.5, 0.0])
    d = torch.tensor([1.0, 0.25, 0.5, 0.125, 0.5])
    cond = torch.randn(5, 3)
    with torch.no_grad():
        s1 = net(x, t, d / 2, cond)
        x_mid = x + (d / 2)[:, None, None] * s1
        s2 = net(x_mid, t + d / 2, d / 2, cond)
        expected = (s1 + s2) / 2
        # Jumping with the target velocity lands where the two half steps land.
        two_halves = x_mid + (d / 2)[:, None, None] * s2
    target = objective.consistency_target(net, x, t, d, cond)
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(x + d[:, None, None] * target, two_halves)


def test_consistency_target_is_clipped():
    class Big(torch.nn.Module):
        def forward(self, x, t, d, cond):
            return torch.full_like(x, 100.0)

    target = Shortcut(target_clip=4.0).consistency_target(
        Big(), torch.zeros(2, 3), torch.zeros(2), torch.ones(2), None
    )
    assert torch.all(target == 4.0)


def test_every_level_receives_rows_at_the_default_batch_size():
    objective = Shortcut(consistency_every=8, coarse_share=0.0)  # M = 128, K = 8
    n_rows = objective.consistency_rows(256)
    assert n_rows == 32
    for _ in range(20):
        levels = objective.consistency_levels(n_rows, torch.device("cpu"))
        counts = torch.bincount(levels, minlength=objective.n_levels)
        assert counts.min() >= n_rows // objective.n_levels, counts
        assert counts.shape[0] == objective.n_levels


class RecordingNet(torch.nn.Module):
    """Wraps a network and records the inputs of each call."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.calls = []

    def forward(self, x, t, d, cond):
        self.calls.append((x.detach().clone(), t.clone(), d.clone(), torch.is_grad_enabled()))
        return self.net(x, t, d, cond)


@pytest.mark.parametrize("batch", [7, 64, 100, 256])
def test_no_row_is_dropped_and_d_t_lie_on_their_grids(batch):
    objective = Shortcut(consistency_every=8)
    net = RecordingNet(small_net())
    x1 = torch.randn(batch, 8, 2)
    loss, metrics = objective.loss(net, x1, torch.randn(batch, 3))
    student = [call for call in net.calls if call[3]]
    assert len(student) == 1
    _, t, d, _ = student[0]
    assert t.shape[0] == batch  # every row of the batch enters the loss
    n_sc = max(batch // 8, 1)
    levels = -torch.log2(d[:n_sc])
    assert torch.all(levels == levels.round()) and torch.all(levels <= 6)
    assert torch.allclose(torch.remainder(t[:n_sc] / d[:n_sc], 1.0), torch.zeros(n_sc))
    assert torch.all(d[n_sc:] == 1 / 128)
    assert torch.allclose(t[n_sc:] * 128, (t[n_sc:] * 128).round())
    loss.backward()
    assert "loss_flow" in metrics and "loss_consistency" in metrics


def test_consistency_targets_use_the_teacher_without_gradient():
    objective = Shortcut(ema_teacher=True)
    student, teacher = RecordingNet(small_net()), RecordingNet(small_net())
    objective.loss(student, torch.randn(64, 8, 2), torch.randn(64, 3), teacher=teacher)
    assert len(teacher.calls) == 2 and not any(call[3] for call in teacher.calls)
    assert len(student.calls) == 1
    no_ema = Shortcut(ema_teacher=False)
    student.calls, teacher.calls = [], []
    no_ema.loss(student, torch.randn(64, 8, 2), torch.randn(64, 3), teacher=teacher)
    assert len(teacher.calls) == 0 and len(student.calls) == 3


def test_flow_rows_equal_plain_flow_matching():
    """The flow part of the shortcut loss is flow matching on the same rows with the same draws."""
    net = small_net().eval()
    x1, cond = torch.randn(16, 8, 2), torch.randn(16, 3)
    torch.manual_seed(3)
    _, metrics = Shortcut().loss(net, x1, cond)
    n_sc = Shortcut().consistency_rows(16)
    torch.manual_seed(3)
    flow_loss, _ = FlowMatching().loss(net, x1[n_sc:], cond[n_sc:])
    assert metrics["loss_flow"] == pytest.approx(flow_loss.item(), rel=1e-5)


def test_flow_target_is_the_path_velocity():
    x0, x1 = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    xt = interpolate(x0, x1, t, eps=0.0)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[3], x1[3])
    dt = 1e-3
    forward = interpolate(x0, x1, t + dt, eps=0.0)
    torch.testing.assert_close((forward - xt) / dt, x1 - x0, atol=1e-3, rtol=1e-3)


def test_objectives_work_on_image_shaped_tensors():
    class PixelNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x, t, d, cond):
            return self.conv(x) + t.view(-1, 1, 1, 1) + d.view(-1, 1, 1, 1)

    net = PixelNet()
    for objective in (Shortcut(), FlowMatching()):
        loss, _ = objective.loss(net, torch.randn(16, 3, 8, 8))
        loss.backward()
        assert objective.sample(net, torch.randn(2, 3, 8, 8), None, 3).shape == (2, 3, 8, 8)


def test_small_batches_still_train_self_consistency():
    objective = Shortcut(consistency_every=8)
    assert objective.consistency_rows(4) == 1 and objective.consistency_rows(1) == 0
    loss, metrics = Shortcut(consistency_every=1).loss(
        small_net(), torch.randn(4, 8, 2), torch.randn(4, 3)
    )
    assert "loss_flow" not in metrics and torch.isfinite(loss)


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_coarse_share_reserves_rows_for_the_two_coarsest_levels(share):
    objective = Shortcut(consistency_every=2, coarse_share=share)  # M = 128: 7 levels
    n_rows = objective.consistency_rows(256)
    levels = objective.consistency_levels(n_rows, torch.device("cpu"))
    counts = torch.bincount(levels, minlength=objective.n_levels)
    reserved = round(n_rows * share)
    spread = n_rows - reserved
    assert counts[0] >= reserved // 2 + spread // 7  # d = 1
    assert counts[1] >= reserved // 2 + spread // 7  # d = 1/2
    assert counts.sum() == n_rows
    if spread >= objective.n_levels:  # the rest still trains every level
        assert counts.min() >= spread // objective.n_levels


def test_without_a_coarse_share_levels_are_round_robin():
    objective = Shortcut(coarse_share=0.0)
    counts = torch.bincount(objective.consistency_levels(70, torch.device("cpu")), minlength=7)
    assert counts.tolist() == [10] * 7


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("coarse_share", 1.5, "coarse_share must lie in"),
        ("coarse_share", -0.1, "coarse_share must lie in"),
        ("teacher_decay", 1.0, "teacher_decay must lie in"),
        ("finest_steps", 12, "power of two"),
        ("teacher_decay", 0.9, "set ema_teacher=true"),
        ("target_guidance", 0.0, "target_guidance must be > 0"),
    ],
)
def test_bad_recipe_fields_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        Shortcut(**{field: value})


@pytest.mark.parametrize("finest", [8, 16, 32])
def test_every_budget_up_to_m_takes_that_many_passes(finest):
    objective = Shortcut(finest_steps=finest)
    net = RecordingNet(small_net())
    for steps in range(1, finest + 1):
        net.calls.clear()
        objective.sample(net, torch.randn(2, 8, 2), torch.randn(2, 3), steps=steps)
        assert len(net.calls) == steps
        told = torch.stack([call[2][0] for call in net.calls])
        assert told.min() >= 1 / finest and abs(told.sum().item() - 1) < 1e-6
    with pytest.raises(ValueError, match=f"in \\[1, {finest}\\]"):
        objective.sample(net, torch.randn(2, 8, 2), torch.randn(2, 3), steps=finest + 1)


class LabelNet(torch.nn.Module):
    """A class-conditional toy: velocity = label (a float per row) + x, null label 0."""

    def forward(self, x, t, d, labels):
        return x + labels.view(-1, *([1] * (x.dim() - 1)))

    def null_condition(self, labels):
        return torch.zeros_like(labels)


def test_target_guidance_guides_only_the_flow_step_teacher():
    net, w, m = LabelNet(), 3.0, 8
    objective = Shortcut(finest_steps=m, target_guidance=w, target_clip=1e6)
    x, labels = torch.randn(2, 4), torch.tensor([1.0, 2.0])
    t = torch.zeros(2)
    d = torch.tensor([2 / m, 4 / m])  # row 0: half steps of 1/M (flow steps); row 1: coarser
    target = objective.consistency_target(net, x, t, d, labels)
    # Guided velocity at the flow step: null + w * (label - null) = x + w * label.
    half = d[0] / 2
    s1 = x[0] + w * labels[0]
    s2 = (x[0] + half * s1) + w * labels[0]
    torch.testing.assert_close(target[0], (s1 + s2) / 2)
    unguided = Shortcut(finest_steps=m, target_clip=1e6).consistency_target(net, x, t, d, labels)
    torch.testing.assert_close(target[1], unguided[1])
    assert not torch.allclose(target[0], unguided[0])


def test_target_guidance_needs_a_class_conditional_network():
    objective = Shortcut(finest_steps=8, target_guidance=1.5)
    d = torch.full((2,), 2 / 8)
    with pytest.raises(ValueError, match="needs a class-conditional network"):
        objective.consistency_target(
            small_net(), torch.randn(2, 8, 2), torch.zeros(2), d, torch.randn(2, 3)
        )
