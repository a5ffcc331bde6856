"""Latency of one chunk at batch 1, and of one bare network forward pass.

The rule for every latency figure here: the call that generates a chunk, at batch 1, after
warm-up, median and p95 (and p99) over at least 200 calls, with the device and thread count
stated, and also as a multiple of one bare forward pass.

Median, p95 and p99 over ``n_calls`` timed calls after ``warmup`` untimed ones; on CUDA the
device is synchronised around every call so the time covers the whole computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from shortcut_policy.policy.timing import timed_ms

if TYPE_CHECKING:
    from shortcut_policy.policy import ShortcutPolicy


def summarize_ms(times_ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(times_ms)),
        "p95_ms": float(np.percentile(times_ms, 95)),
        "p99_ms": float(np.percentile(times_ms, 99)),
    }


def example_batch(policy: ShortcutPolicy, obs: Mapping[str, np.ndarray], batch: int) -> dict:
    """``obs`` (one observation) repeated into ``{key: (batch, n_obs_steps, *shape)}``; the
    dtype is kept, so camera frames stay uint8 as a camera gives them."""
    return {
        key: np.broadcast_to(value, (batch, policy.n_obs_steps, *np.shape(value))).copy()
        for key, value in obs.items()
    }


@torch.inference_mode()
def forward_latency(
    policy: ShortcutPolicy, obs: Mapping[str, np.ndarray], n_calls: int = 200, warmup: int = 20
) -> dict[str, float]:
    """One bare ``network(x, t, d, cond)`` call at batch 1 (no encoding, no sampling loop)."""
    batch = example_batch(policy, obs, 1)
    cond = policy.network.encode(policy.network_inputs(batch))
    if getattr(policy.network, "given", None) is not None:  # a prefix-trained head: none given
        cond = policy.network.given.pack(cond, None, None)
    x = torch.randn(policy.network.sample_shape(1), device=policy.device)
    t = torch.zeros(1, device=policy.device)
    d = torch.ones(1, device=policy.device)
    times = timed_ms(lambda: policy.network(x, t, d, cond), policy.device, n_calls, warmup)
    return summarize_ms(times)


@torch.inference_mode()
def encode_latency(
    policy: ShortcutPolicy, obs: Mapping[str, np.ndarray], n_calls: int = 200, warmup: int = 20
) -> dict[str, float]:
    """Observations -> conditioning at batch 1: the camera encoders' share of a chunk."""
    tensors = policy.network_inputs(example_batch(policy, obs, 1))
    return summarize_ms(
        timed_ms(lambda: policy.network.encode(tensors), policy.device, n_calls, warmup)
    )


def chunk_latency(
    policy: ShortcutPolicy,
    obs: Mapping[str, np.ndarray],
    steps: int,
    n_calls: int = 200,
    warmup: int = 20,
) -> dict[str, float]:
    """``predict_action_chunk`` at batch 1 with ``steps`` network passes (validation included)."""
    batch = example_batch(policy, obs, 1)
    times = timed_ms(
        lambda: policy.predict_action_chunk(batch, steps), policy.device, n_calls, warmup
    )
    return summarize_ms(times)


def chunk_throughput(
    policy: ShortcutPolicy, obs: Mapping[str, np.ndarray], steps: int, batch: int, n_calls: int = 5
) -> float:
    """Chunks per second when ``batch`` environments are served by one call."""
    stacked = example_batch(policy, obs, batch)
    times = timed_ms(lambda: policy.predict_action_chunk(stacked, steps), policy.device, n_calls, 1)
    return float(batch / (np.median(times) / 1000.0))
