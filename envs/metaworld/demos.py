"""MetaWorld demonstrations from the scripted experts, written in our zarr layout.

The store has ``data/state`` ``(N, 39)`` float32, ``data/action`` ``(N, 4)`` float32 and
``meta/episode_ends``, plus ``meta/episode_seeds`` and a ``summary.json``. An episode ends on
the first success step (that step is kept) or at ``max_steps``. Episodes are collected by
``shortcut_policy.data.collection`` (staged per seed, resumable; the store is written
atomically once every seed is done).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from envs.metaworld.env import MetaWorldEnv, check_task, make_expert
from shortcut_policy.data.collection import (
    arrays,
    collect_episodes,
    collection_summary,
    kept_episodes,
    remove_staging,
)
from shortcut_policy.data.replay_buffer import ReplayBuffer


def run_expert_episode(
    env: MetaWorldEnv, expert, seed: int, action_noise: float = 0.0
) -> dict[str, np.ndarray | bool]:
    """One expert episode: ``state (T, 39)``, ``action (T, 4)`` and ``success``.

    ``action_noise`` adds Gaussian noise of that standard deviation (action units) to the
    executed action; the stored action is the one executed.
    """
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    states, actions, info = [], [], {"is_success": False}
    done = False
    while not done:
        with warnings.catch_warnings():  # the experts warn that their gains saturate
            warnings.simplefilter("ignore")
            action = np.asarray(expert.get_action(env.last_raw_obs), dtype=np.float32)
        if action_noise > 0:
            action = action + rng.normal(0.0, action_noise, size=4).astype(np.float32)
        action = np.clip(action, -1.0, 1.0)
        states.append(obs["state"])
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return {
        "state": np.stack(states),
        "action": np.stack(actions),
        "success": bool(info["is_success"]),
    }


def make_metaworld_store(
    path: str | os.PathLike,
    task: str,
    n_episodes: int = 50,
    start_seed: int = 0,
    max_steps: int = 200,
    action_noise: float = 0.0,
    keep_failed: bool = False,
) -> ReplayBuffer:
    """Run the expert of ``task`` from reset seeds ``start_seed ..`` and write the store.

    Failed episodes are left out unless ``keep_failed``; the summary lists them.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    name = check_task(task)
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    env, expert = MetaWorldEnv(name, max_steps=max_steps), make_expert(name)
    try:
        collected = collect_episodes(
            lambda seed: run_expert_episode(env, expert, seed, action_noise),
            range(start_seed, start_seed + n_episodes),
            staging,
            desc=f"collect {name}",
        )
    finally:
        env.close()
    kept = kept_episodes(collected, keep_failed, name)
    summary = collection_summary(
        name, collected, keep_failed, max_steps=max_steps, action_noise=action_noise
    )
    buffer = ReplayBuffer.from_episodes([arrays(ep) for _, ep in kept])
    meta = {"episode_seeds": np.array([seed for seed, _ in kept], dtype=np.int64)}
    buffer.save(path, meta=meta, files={"summary.json": json.dumps(summary, indent=2)})
    remove_staging(staging)
    return buffer
