"""Prefix conditioning: the network is told the committed actions and continues them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.data.bimodal import AMPLITUDE
from shortcut_policy.models.prefix import GivenPrefix, given_lengths, prefix_mask
from shortcut_policy.train import train
from tests.conftest import quick_run

HORIZON = 8


@pytest.fixture(scope="module")
def prefix_run(tmp_path_factory):
    """unet_tiny on the two-mode task with flow matching, given prefixes of up to 4 actions."""
    tmp = tmp_path_factory.mktemp("prefix")
    cfg = quick_run(
        tmp,
        f"dataset.path={tmp / 'bimodal.zarr'}",
        "dataset.generator_args.n_episodes=400",
        "objective=flow",
        "+model.prefix_max=4",
        "train.steps=800",
        "train.batch_size=128",
        "checkpoint_every=800",
        "eval_every=0",
    )
    train(cfg)
    return tmp / "run"


def path_side(side: float, x0: float = 0.0) -> np.ndarray:
    """The demonstrated chunk ``(H, 2)`` that passes the obstacle on ``side`` (noise-free)."""
    s = np.arange(1, HORIZON + 1) / HORIZON
    return np.stack([x0 + side * AMPLITUDE * np.sin(np.pi * s), -1 + 2 * s], -1).astype(np.float32)


def test_lengths_fall_with_k_and_reach_zero_most_often():
    torch.manual_seed(0)
    counts = torch.bincount(given_lengths(40_000, 3, torch.device("cpu")), minlength=4)
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)  # 4 : 3 : 2 : 1
    assert abs(counts[0].item() / 40_000 - 0.4) < 0.02


def test_pack_and_unpack_round_trip_the_given_prefix():
    given = GivenPrefix(horizon=4, action_dim=2)
    features, values = torch.randn(3, 5), torch.randn(3, 4, 2)
    mask = prefix_mask(torch.tensor([0, 2, 4]), 4)
    got_features, got_mask, got_values = given.unpack(given.pack(features, mask, values))
    assert torch.equal(got_features, features) and torch.equal(got_mask, mask)
    assert torch.equal(got_values, values * mask[..., None])


def test_the_network_pins_given_positions_and_outputs_nothing_there(prefix_run):
    policy = ShortcutPolicy.from_pretrained(prefix_run, device="cpu")
    net = policy.network
    features = net.encode({"pos": torch.zeros(2, 1, 2)})
    mask = prefix_mask(torch.tensor([3, 3]), HORIZON)
    cond = net.given.pack(features, mask, torch.zeros(2, HORIZON, 2))
    x = torch.randn(2, HORIZON, 2)
    moved = x.clone()
    moved[:, :3] += 5.0  # what the sampler holds at given positions must not matter
    t, d = torch.full((2,), 0.3), torch.full((2,), 1 / 128)
    out = net(x, t, d, cond)
    assert torch.equal(out[:, :3], torch.zeros_like(out[:, :3]))
    torch.testing.assert_close(net(moved, t, d, cond), out)


def test_a_one_pass_sample_continues_the_side_its_prefix_took(prefix_run):
    """Flow matching's one pass averages the two ways past the obstacle; told the first two
    actions, the chunk follows their side to the midpoint (offset ±1)."""
    policy = ShortcutPolicy.from_pretrained(prefix_run, device="cpu")
    policy.seed(0)
    obs = {"pos": np.tile(np.array([[[0.0, -1.0]]], np.float32), (64, 1, 1))}
    mask = np.zeros((64, HORIZON), bool)
    mask[:, :2] = True
    middle = HORIZON // 2 - 1  # s = 1/2
    for side in (-1.0, 1.0):
        values = np.tile(path_side(side)[None], (64, 1, 1))
        chunk = policy.predict_checked(obs, 1, given=(mask, values))
        np.testing.assert_allclose(chunk[:, :2], values[:, :2], atol=1e-5)  # written in
        # 800 steps of unet_tiny: about 0.8 (1,000 steps: 0.9); unprefixed 1-pass: -0.1
        assert side * chunk[:, middle, 0].mean() > 0.6, chunk[:, middle, 0].mean()
    plain = policy.predict_checked(obs, 1)  # no prefix: still acts (an episode's first chunk)
    assert np.isfinite(plain).all()


def test_join_prefix_on_a_policy_trained_without_it_is_refused():
    with pytest.raises(ValueError, match="needs a policy trained with prefix conditioning"):
        ShortcutPolicy.from_pretrained("data/pretrained/push_t", join="prefix")


@pytest.mark.parametrize("objective", ["shortcut", "meanflow", "ddpm"])
def test_every_objective_trains_a_prefix_network_unchanged(tmp_path, objective):
    """The objectives know nothing of prefixes: the given positions ride in the conditioning
    (MeanFlow with its default adaptive weight, which counts only the free positions)."""
    from tests.conftest import tiny_bimodal_run

    run = tiny_bimodal_run(
        tmp_path, f"objective={objective}", "+model.prefix_max=3", "eval_steps=[1]"
    )
    policy = ShortcutPolicy.from_pretrained(run, device="cpu")
    mask = np.zeros((2, HORIZON), bool)
    mask[:, :3] = True
    values = np.tile(path_side(1.0)[None], (2, 1, 1))
    obs = {"pos": np.zeros((2, 2, 2), np.float32)}
    chunk = policy.predict_checked(obs, 2, given=(mask, values))
    np.testing.assert_allclose(chunk[:, :3], values[:, :3], atol=1e-5)
    assert np.isfinite(chunk).all()


def test_the_loss_counts_exactly_the_positions_that_are_not_given(prefix_run):
    policy = ShortcutPolicy.from_pretrained(prefix_run, device="cpu")
    net = policy.network.train()
    batch = {"action": torch.zeros(64, HORIZON, 2), "obs": {"pos": torch.zeros(64, 2, 2)}}
    batch = net.augment(batch)
    free = net.free_positions(batch)
    assert free.shape == (64, HORIZON)
    torch.testing.assert_close(free.sum(1), HORIZON - batch["given_len"])
    assert not free[:, 0].all()  # some rows were given a prefix
    assert net.free_positions({"action": batch["action"]}) is None  # acting: nothing given


def test_a_prefix_as_long_as_the_chunk_is_refused(tmp_path):
    cfg = quick_run(tmp_path, f"dataset.path={tmp_path / 'b.zarr'}", "+model.prefix_max=8")
    with pytest.raises(ValueError, match=r"must be in \[0, horizon - 1\]"):
        train(cfg)


def test_the_rollout_latency_figures_time_a_prefix_trained_network(prefix_run):
    """Rollouts time the bare head call; a prefix-trained head takes the (empty) prefix too."""
    from shortcut_policy.evaluation.latency import encode_latency, forward_latency

    policy = ShortcutPolicy.from_pretrained(prefix_run, device="cpu")
    obs = {key: np.zeros(shape, np.float32) for key, shape in policy.obs_shapes.items()}
    assert forward_latency(policy, obs, n_calls=2, warmup=1)["median_ms"] > 0
    assert encode_latency(policy, obs, n_calls=2, warmup=1)["median_ms"] > 0
