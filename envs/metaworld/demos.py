"""MetaWorld demonstrations from the scripted experts, written in our zarr layout.

The store has ``data/state`` ``(N, 39)`` float32, ``data/action`` ``(N, 4)`` float32 and
``meta/episode_ends``, plus ``meta/episode_seeds`` and a ``summary.json``. An episode ends on
the first success step (that step is kept) or at ``max_steps``. MetaWorld simulates ~1,000
steps a second, so a 50-episode store takes seconds and is simply rewritten when interrupted
(``ReplayBuffer.save`` is atomic: a store that exists is complete).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from envs.metaworld.env import MetaWorldEnv, check_task, make_expert
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer


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
    env, expert = MetaWorldEnv(name, max_steps=max_steps), make_expert(name)
    episodes, seeds, failed = [], [], []
    try:
        for seed in range(start_seed, start_seed + n_episodes):
            episode = run_expert_episode(env, expert, seed, action_noise)
            if episode["success"] or keep_failed:
                episodes.append({"state": episode["state"], "action": episode["action"]})
                seeds.append(seed)
            if not episode["success"]:
                failed.append(seed)
    finally:
        env.close()
    if not episodes:
        raise DatasetError(
            f"the {name} expert succeeded in none of {n_episodes} episodes; nothing to store "
            "(raise max_steps, or pass keep_failed=true)"
        )
    summary = {
        "task": name,
        "attempted": n_episodes,
        "kept": len(episodes),
        "success_rate": 1.0 - len(failed) / n_episodes,
        "failed_seeds": failed,
        "max_steps": max_steps,
        "action_noise": action_noise,
    }
    buffer = ReplayBuffer.from_episodes(episodes)
    meta = {"episode_seeds": np.array(seeds, dtype=np.int64)}
    buffer.save(Path(path), meta=meta, files={"summary.json": json.dumps(summary, indent=2)})
    return buffer
