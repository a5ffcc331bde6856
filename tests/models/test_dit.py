import pytest
import torch

from shortcut_policy.models import build_network
from shortcut_policy.models.dit import DiT
from shortcut_policy.models.image_net import ImageGenerator
from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import DDPM, FlowMatching, MeanFlow, Shortcut
from shortcut_policy.objectives.contract import Objective
from shortcut_policy.objectives.guidance import Guided

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


def test_guidance_applies_per_row_in_a_mixed_batch():
    net = ImageGenerator(SPEC, TINY)
    torch.nn.init.normal_(net.dit.final.linear.weight)
    guided = Guided(net, 3.0, 1 / 128)
    x, t, _, y = inputs(4)
    d = torch.tensor([1 / 128, 0.5, 1 / 128, 1.0])
    cond, null = net(x, t, d, y), net(x, t, d, torch.full_like(y, 10))
    expected = torch.where((d < 0.01)[:, None, None, None], null + 3.0 * (cond - null), cond)
    assert torch.allclose(guided(x, t, d, y), expected, atol=1e-5)


@pytest.mark.parametrize("objective", [Shortcut(), FlowMatching(), DDPM(), MeanFlow()])
def test_every_objective_meets_the_contract_and_ddpm_samples_are_guided(objective):
    assert isinstance(objective, Objective)
    net = ImageGenerator(SPEC, TINY)
    torch.nn.init.normal_(net.dit.final.linear.weight)
    for block in net.dit.blocks:  # zero-initialised adaLN would hide the label
        torch.nn.init.normal_(block.adaln[-1].weight, std=0.1)
    noise, labels = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    plain = objective.sample(Guided(net, 1.0, objective.finest_d), noise, labels, 2)
    guided = objective.sample(Guided(net, 3.0, objective.finest_d), noise, labels, 2)
    # Shortcut and MeanFlow jump at 2 passes (no guidance); flow and DDPM take fine steps.
    # DDPM tells the network d = 1/100 > 1/128: its guidance used to be skipped.
    fine_steps = objective.name in ("flow", "ddpm")
    assert torch.allclose(plain, guided, atol=1e-6) != fine_steps


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


def test_sampled_images_of_a_ddpm_model_are_guided():
    from shortcut_policy.evaluation.image_samples import sample_images

    net = ImageGenerator(SPEC, TINY)
    torch.nn.init.normal_(net.dit.final.linear.weight)
    for block in net.dit.blocks:
        torch.nn.init.normal_(block.adaln[-1].weight, std=0.1)
    labels = torch.tensor([1, 2])
    plain = sample_images(net, DDPM(), labels, steps=4, guidance_scale=1.0)
    guided = sample_images(net, DDPM(), labels, steps=4, guidance_scale=3.0)
    assert not torch.allclose(plain, guided)  # d = 1/100 was above 1/128: never guided
