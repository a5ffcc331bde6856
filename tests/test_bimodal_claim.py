"""The paper's central claim, in seconds: one shortcut step lands on a mode, one flow step does not.

Start points and demonstrated chunks come from the bimodal task (the obstacle is passed on the
left or on the right); a small MLP is trained on normalized chunks by each objective.
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from shortcut_policy.data.bimodal import bimodal_episode, mode_fractions
from shortcut_policy.models.embeddings import TimeStepEmbedding
from shortcut_policy.objectives import FlowMatching, Shortcut
from shortcut_policy.training.ema import ema_decay_at, update_ema

HORIZON = 4


class MLPVelocity(nn.Module):
    """``net(x: (B, H, 2), t, d, cond: (B, 2)) -> (B, H, 2)``."""

    def __init__(self, width=512):
        super().__init__()
        self.embed = TimeStepEmbedding(32)
        self.body = nn.Sequential(
            nn.Linear(HORIZON * 2 + 2 + 64, width),
            nn.Mish(),
            nn.Linear(width, width),
            nn.Mish(),
            nn.Linear(width, HORIZON * 2),
        )

    def forward(self, x, t, d, cond):
        h = torch.cat([x.flatten(1), cond, self.embed(t, d)], dim=-1)
        return self.body(h).view_as(x)


def dataset(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    episodes = [bimodal_episode(rng, HORIZON, noise=0.02) for _ in range(n)]
    start = torch.tensor(np.stack([ep["pos"][0] for ep in episodes]))
    chunks = torch.tensor(np.stack([ep["action"] for ep in episodes]))
    return start, chunks


def train_and_sample(objective, steps=2000, seed=0):
    torch.manual_seed(seed)
    start, chunks = dataset()
    scale = chunks.abs().amax(dim=(0, 1))  # chunks / scale lies in [-1, 1]
    net = MLPVelocity()
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(steps):
        rows = torch.randint(0, len(start), (256,))
        loss, _ = objective.loss(net, chunks[rows] / scale, start[rows], ema)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        update_ema(ema, net, ema_decay_at(step, 0.99))
    test_start = torch.stack([torch.empty(512).uniform_(-0.3, 0.3), -torch.ones(512)], -1)
    samples = {}
    for n_steps in (1, 128):
        noise = torch.randn(512, HORIZON, 2)
        samples[n_steps] = (objective.sample(ema, noise, test_start, n_steps) * scale).numpy()
    return test_start.numpy(), samples


@pytest.fixture(scope="module")
def shortcut_samples():
    return train_and_sample(Shortcut(consistency_every=4, coarse_share=0.0, ema_teacher=True))


@pytest.fixture(scope="module")
def flow_samples():
    return train_and_sample(FlowMatching())


def test_one_shortcut_step_lands_on_the_modes(shortcut_samples):
    start, samples = shortcut_samples
    one = mode_fractions(start, samples[1])
    # Measured with these seeds: 0.68 near a mode, 0.15 in the gap (flow: 0.00 and 1.00).
    assert one["near_mode"] > 0.6 and one["in_gap"] < 0.25, one
    assert 0.3 < one["left"] < 0.7, one  # both modes, not a collapse onto one side


def test_one_flow_step_lands_between_the_modes(flow_samples):
    start, samples = flow_samples
    one = mode_fractions(start, samples[1])
    assert one["in_gap"] > 0.8 and one["near_mode"] < 0.1, one
    many = mode_fractions(start, samples[128])
    assert many["near_mode"] > 0.8, many  # flow itself is fine given enough steps


if __name__ == "__main__":  # python -m tests.test_bimodal_claim: print the figures in RESULTS
    torch.set_num_threads(1)
    for objective in (
        Shortcut(consistency_every=4, coarse_share=0.0, ema_teacher=True),
        FlowMatching(),
    ):
        start, samples = train_and_sample(objective)
        for n_steps, chunks in samples.items():
            print(objective.name, n_steps, mode_fractions(start, chunks))
