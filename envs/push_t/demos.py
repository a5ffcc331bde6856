"""Push-T demonstrations from the scripted expert, written in Diffusion Policy's zarr layout.

Episodes are collected by ``shortcut_policy.data.collection``: each is staged in
``<store>.partial/seed_<seed>.npz``, the zarr store is built (atomically) only when every seed
is done, and running the same command again resumes from the staged episodes. Workers are
separate processes.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from envs.push_t.expert import EXPERT_VERSION
from envs.push_t.expert_episode import run_expert_episode
from shortcut_policy.data.collection import (
    arrays,
    collect_episodes,
    collection_summary,
    kept_episodes,
    remove_staging,
)
from shortcut_policy.data.replay_buffer import ReplayBuffer

STORE_KEYS = ("state", "keypoint", "action")


def push_t_episode(seed: int, render: bool) -> dict:
    """One expert episode with the store's keys, ``success`` and ``score``."""
    episode = run_expert_episode(seed, render=render)
    out = {key: episode[key] for key in STORE_KEYS}
    if render:  # the camera observation of Diffusion Policy's image task: frame + pusher x, y
        out["img"] = episode["img"]
        out["agent_pos"] = episode["state"][:, :2]
    return {**out, "success": bool(episode["success"]), "score": float(episode["score"])}


def make_push_t_store(
    path: str | os.PathLike,
    n_episodes: int = 200,
    start_seed: int = 0,
    workers: int = 1,
    render: bool = False,
    keep_failed: bool = False,
) -> ReplayBuffer:
    """Run the expert from reset seeds ``start_seed .. start_seed + n_episodes - 1``.

    Failed episodes are left out unless ``keep_failed``. Writes ``meta/episode_seeds``,
    ``meta/episode_success``, ``meta/episode_score`` and a ``summary.json`` in the store.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    seeds = range(start_seed, start_seed + n_episodes)
    run = functools.partial(push_t_episode, render=render)
    collected = collect_episodes(run, seeds, staging, workers, desc="collect push_t")
    kept = kept_episodes(collected, keep_failed, "push_t")
    summary = collection_summary(
        "push_t", collected, keep_failed, expert_version=EXPERT_VERSION, render=render
    )
    meta = {
        "episode_seeds": np.array([seed for seed, _ in kept], dtype=np.int64),
        "episode_success": np.array([ep["success"] for _, ep in kept], dtype=bool),
        "episode_score": np.array([ep["score"] for _, ep in kept], dtype=np.float32),
    }
    buffer = ReplayBuffer.from_episodes([arrays(ep) for _, ep in kept])
    buffer.save(path, meta=meta, files={"summary.json": json.dumps(summary, indent=2)})
    remove_staging(staging)
    return buffer
