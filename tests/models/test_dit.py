import pytest
import torch

from shortcut_policy.models import build_network
from shortcut_policy.models.dit import DiT
from shortcut_policy.models.image_net import Guided, ImageGenerator
from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import Shortcut

SPEC = {"task": "digits", "kind": "images", "image_shape": [1, 8, 8], "num_classes": 10}
TINY = {"patch_size": 2, "hidden_size": 32, "depth": 2, "num_heads": 2}


def inputs(batch, channels=1, size=8):
    x = torch.randn(batch, channels, size, size)
    return x, torch.rand(batch), torch.full((batch,), 1 / 128), torch.randint(0, 10, (batch,))


@pytest.mark.parametrize("patch,size,channels", [(1, 8, 1), (2, 8, 3), (4, 16, 1), (8, 16, 3)])
def test_output_shape_equals_input_shape(patch, size, channels):
    net = DiT(size, channels, 10, patch_size=patch, hidden_size=32, depth=1, num_heads=2)
    torch.nn.init.normal_(net.final.linear.weight)  # non-zero output, to see the layout
    x, t, d, y = inputs(3, channels, size)
    out = net(x, t, d, y)
    assert out.shape == x.shape and out.abs().sum() > 0


def test_output_is_zero_at_initialisation_and_blocks_start_as_identity():
    net = DiT(8, 1, 10, **TINY)
    x, t, d, y = inputs(4)
    assert torch.equal(net(x, t, d, y), torch.zeros_like(x))
    tokens = torch.randn(4, 16, 32)
    c = torch.randn(4, 32)
    assert torch.equal(net.blocks[0](tokens, c), tokens)


def test_class_dropout_uses_the_null_label_only_in_training():
    net = ImageGenerator(SPEC, {**TINY, "class_dropout": 1.0})
    batch = {"image": torch.zeros(6, 1, 8, 8), "label": torch.arange(6)}
    net.train()
    assert torch.equal(net.prepare_batch(batch)[1], torch.full((6,), 10))
    net.eval()
    assert torch.equal(net.prepare_batch(batch)[1], torch.arange(6))
    half = ImageGenerator(SPEC, {**TINY, "class_dropout": 0.5}).train()
    dropped = (
        half.prepare_batch(
            {"image": torch.zeros(4000, 1, 8, 8), "label": torch.zeros(4000).long()}
        )[1]
        == 10
    )
    assert 0.45 < dropped.float().mean() < 0.55


def test_guidance_applies_at_the_finest_step_only():
    net = ImageGenerator(SPEC, TINY)
    torch.nn.init.normal_(net.dit.final.linear.weight)
    for block in net.dit.blocks:
        torch.nn.init.normal_(block.adaln[-1].weight, std=0.1)
    guided = Guided(net, 3.0, 1 / 128)
    x, t, _, y = inputs(5)
    fine, coarse = torch.full((5,), 1 / 128), torch.full((5,), 0.5)
    cond, null = net(x, t, fine, y), net(x, t, fine, torch.full_like(y, 10))
    assert torch.allclose(guided(x, t, fine, y), null + 3.0 * (cond - null), atol=1e-5)
    assert torch.allclose(guided(x, t, coarse, y), net(x, t, coarse, y))
    assert not torch.allclose(cond, null)


def test_one_objective_class_trains_the_dit_and_the_unet():
    objective = Shortcut(consistency_every=2)
    dit = ImageGenerator(SPEC, TINY)
    unet = ConditionalUnet1D(action_dim=2, cond_dim=4, down_dims=[8, 16], embed_dim=8, n_groups=4)
    cases = [
        (dit, torch.rand(8, 1, 8, 8) * 2 - 1, torch.randint(0, 10, (8,))),
        (unet, torch.rand(8, 16, 2) * 2 - 1, torch.randn(8, 4)),
    ]
    for net, x1, cond in cases:
        loss, metrics = objective.loss(net, x1, cond, net, None)
        loss.backward()
        assert torch.isfinite(loss) and {"loss_flow", "loss_consistency"} <= set(metrics)
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="not divisible by patch_size 3"):
        DiT(8, 1, 10, patch_size=3, hidden_size=32, depth=1, num_heads=2)
    net = DiT(8, 1, 10, **TINY)
    x, t, d, _ = inputs(2)
    with pytest.raises(ValueError, match="class label out of range"):
        net(x, t, d, torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="expects images"):
        net(torch.zeros(2, 3, 8, 8), t, d, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="cannot train task"):
        build_network(SPEC, {"name": "unet_small", "down_dims": [8]})
