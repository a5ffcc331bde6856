"""A synthetic task whose demonstrations are bimodal by construction.

Every episode starts at ``(x0, -1)`` below an obstacle at the origin and moves to ``(x0, +1)``,
passing it on the left or on the right with equal probability: the action at step ``i`` is the
next waypoint ``(x0 + side * A * sin(pi * s_i), -1 + 2 s_i)``, ``s_i = (i + 1) / H``. For one
observation (the start point) the demonstrated chunks therefore go one of two ways, and their mean
goes straight through the obstacle. Midway (``s = 1/2``) the lateral offset is exactly ``±A``.
"""

from __future__ import annotations

import os

import numpy as np

from shortcut_policy.data.replay_buffer import ReplayBuffer

AMPLITUDE = 1.0


def bimodal_episode(rng: np.random.Generator, horizon: int, noise: float) -> dict[str, np.ndarray]:
    """One episode of ``horizon`` steps: ``pos`` (H, 2) current point, ``action`` (H, 2) next."""
    x0 = rng.uniform(-0.3, 0.3)
    side = rng.choice([-1.0, 1.0])
    s = np.arange(horizon + 1) / horizon
    path = np.stack([x0 + side * AMPLITUDE * np.sin(np.pi * s), -1 + 2 * s], axis=-1)
    path[1:] += rng.normal(0, noise, size=(horizon, 2))
    return {"pos": path[:-1].astype(np.float32), "action": path[1:].astype(np.float32)}


def make_bimodal_store(
    path: str | os.PathLike,
    n_episodes: int = 2000,
    horizon: int = 16,
    noise: float = 0.02,
    seed: int = 0,
) -> ReplayBuffer:
    """Generate the dataset and write it as a zarr store at ``path``."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be positive, got {n_episodes}")
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer.from_episodes(
        bimodal_episode(rng, horizon, noise) for _ in range(n_episodes)
    )
    buffer.save(path)
    return buffer


def mode_fractions(start: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """Where sampled chunks pass the obstacle.

    Args:
        start: ``(N, 2)`` start points the chunks were conditioned on.
        actions: ``(N, H, 2)`` sampled chunks in data units.

    Returns:
        ``near_mode``: fraction whose midway lateral offset is within ``A/4`` of ``±A``;
        ``in_gap``: fraction whose offset is within ``A/2`` of 0 (through the obstacle);
        ``left``: fraction of near-mode samples on the negative side.
    """
    mid = actions.shape[1] // 2 - 1
    offset = actions[:, mid, 0] - start[:, 0]
    near = np.abs(np.abs(offset) - AMPLITUDE) < AMPLITUDE / 4
    return {
        "near_mode": float(near.mean()),
        "in_gap": float((np.abs(offset) < AMPLITUDE / 2).mean()),
        "left": float((offset[near] < 0).mean()) if near.any() else 0.0,
    }
