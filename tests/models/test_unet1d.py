import pytest
import torch

from shortcut_policy.models.embeddings import TimeStepEmbedding, step_level
from shortcut_policy.models.unet1d import ConditionalUnet1D


@pytest.mark.parametrize(
    "down_dims, horizon, action_dim", [((16, 32), 8, 2), ((16, 32, 64), 16, 7), ((16,), 5, 3)]
)
def test_output_shape_equals_input_shape(down_dims, horizon, action_dim):
    net = ConditionalUnet1D(action_dim, 6, down_dims=down_dims, kernel_size=3, embed_dim=16)
    x = torch.randn(4, horizon, action_dim)
    out = net(x, torch.rand(4), torch.full((4,), 0.5), torch.randn(4, 6))
    assert out.shape == x.shape


def test_each_conditioning_input_changes_the_output():
    net = ConditionalUnet1D(2, 4, down_dims=(16, 32), kernel_size=3, embed_dim=16)
    x, t, d, cond = (
        torch.randn(2, 8, 2),
        torch.full((2,), 0.25),
        torch.full((2,), 0.5),
        torch.randn(2, 4),
    )
    base = net(x, t, d, cond)
    assert not torch.allclose(base, net(x, t + 0.25, d, cond))
    assert not torch.allclose(base, net(x, t, d / 2, cond))
    assert not torch.allclose(base, net(x, t, d, cond + 1))


def test_step_size_is_embedded_as_its_level():
    d = torch.tensor([1.0, 0.5, 1 / 128])
    assert step_level(d).tolist() == [0.0, 1.0, 7.0]
    embed = TimeStepEmbedding(16)
    levels = 2.0 ** -torch.arange(8.0)
    out = embed(torch.zeros(8), levels)
    assert torch.isfinite(out).all()
    # Every trained step size gets a distinct embedding.
    assert torch.cdist(out, out).add(torch.eye(8)).min() > 1e-3


def test_bad_horizon_and_cond_shape_are_named():
    net = ConditionalUnet1D(2, 4, down_dims=(16, 32, 64), kernel_size=3, embed_dim=16)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 10, 2), torch.zeros(1), torch.ones(1), torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"cond must have shape \(B, 4\)"):
        net(torch.randn(1, 8, 2), torch.zeros(1), torch.ones(1), torch.randn(1, 5))


def test_step_embedding_by_length_keeps_the_derivative_in_d_on_the_scale_of_t():
    torch.manual_seed(0)
    t, d = torch.full((1,), 0.5), torch.full((1,), 1 / 128)
    slopes = {}
    for mode in ("level", "length"):
        embed = TimeStepEmbedding(16, step_embedding=mode)
        _, slope_d = torch.func.jvp(lambda step, e=embed: e(t, step), (d,), (torch.ones_like(d),))
        _, slope_t = torch.func.jvp(lambda time, e=embed: e(time, d), (t,), (torch.ones_like(t),))
        slopes[mode] = slope_d.abs().max() / slope_t.abs().max()
    # MeanFlow's target holds the derivative in d: by level it is ~13x t's at d = 1/128.
    assert slopes["level"] > 10 and slopes["length"] < 3
    with pytest.raises(ValueError, match="model.step_embedding must be one of"):
        TimeStepEmbedding(16, step_embedding="log")


def test_time_scale_sets_how_fast_the_embedding_turns_with_t():
    torch.manual_seed(0)
    t, d = torch.full((1,), 0.5), torch.full((1,), 0.25)
    slopes = {}
    for scale in (1.0, 1000.0):
        torch.manual_seed(0)
        embed = TimeStepEmbedding(16, time_scale=scale, step_embedding="length")
        _, slope = torch.func.jvp(lambda time, e=embed: e(time, d), (t,), (torch.ones_like(t),))
        slopes[scale] = slope.abs().max()
    # MeanFlow's target holds d * du/dt: sinusoids of 1000 t put noise of that size in it.
    assert slopes[1000.0] > 50 * slopes[1.0]
