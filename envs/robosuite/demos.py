"""robosuite demonstrations from the scripted experts: robomimic-layout HDF5, then our zarr store.

``make_robosuite_store`` runs the expert of ``lift``, ``can`` or ``square`` from reset seeds
``start_seed ..``, writes every kept episode to ``<store>.hdf5`` (robomimic's layout, see
``shortcut_policy/data/robomimic_hdf5.py``: obs and next_obs with robomimic's key names, actions,
MuJoCo states, sparse rewards, dones, ``env_args``), and converts that file to the zarr store
with the requested observation keys. Episodes are staged per seed
(``shortcut_policy.data.collection``), so an interrupted run resumes, and writes are atomic,
so it leaves no file that looks complete; the HDF5 file, once written, is reused by later
conversions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.robosuite.env import RobosuiteEnv, check_task, env_args_json
from envs.robosuite.expert import make_expert
from shortcut_policy.data.collection import (
    arrays,
    collect_episodes,
    collection_summary,
    kept_episodes,
    remove_staging,
)
from shortcut_policy.data.replay_buffer import ReplayBuffer
from shortcut_policy.data.robomimic_hdf5 import (
    ROBOMIMIC_LOW_DIM_KEYS,
    robomimic_to_zarr,
    write_robomimic_hdf5,
)


def run_expert_episode(env: RobosuiteEnv, task: str, seed: int) -> dict[str, Any]:
    """One expert episode in robomimic's per-demo form plus ``success`` (bool).

    ``obs[key]`` is ``(T, ...)`` float32 before each action, ``next_obs[key]`` after it,
    ``actions`` ``(T, 7)``, ``states`` ``(T, S)`` float64, ``rewards`` and ``dones`` ``(T,)``.
    """
    obs, _ = env.reset(seed=seed)
    expert = make_expert(task, env)
    expert.reset(env.raw_obs)
    rows: dict[str, list] = {"obs": [], "next_obs": [], "actions": [], "states": [], "rewards": []}
    done, info = False, {"is_success": False}
    while not done:
        action = np.clip(expert.act(env.raw_obs), -1.0, 1.0)
        rows["states"].append(env.sim_state())
        rows["obs"].append(obs)
        obs, _, terminated, truncated, info = env.step(action)
        rows["next_obs"].append(obs)
        rows["actions"].append(action.astype(np.float64))
        rows["rewards"].append(float(info["is_success"]))
        done = terminated or truncated
    steps = len(rows["actions"])
    dones = np.zeros(steps, dtype=np.int64)
    dones[-1] = 1
    return {
        "obs": {key: np.stack([o[key] for o in rows["obs"]]) for key in rows["obs"][0]},
        "next_obs": {key: np.stack([o[key] for o in rows["next_obs"]]) for key in obs},
        "actions": np.stack(rows["actions"]),
        "states": np.stack(rows["states"]),
        "rewards": np.asarray(rows["rewards"]),
        "dones": dones,
        "success": bool(info["is_success"]),
    }


def collect_robosuite_hdf5(
    hdf5_path: str | os.PathLike,
    task: str,
    n_episodes: int = 100,
    start_seed: int = 0,
    max_steps: int = 300,
    env: RobosuiteEnv | None = None,
) -> dict[str, Any]:
    """Run the expert and write the successful episodes to ``hdf5_path``; returns a summary.

    Episodes are staged per seed in ``<hdf5_path>.partial/`` (a rerun resumes); ``env`` reuses
    an open environment of ``task`` (its own step limit then applies).
    """
    check_task(task)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    hdf5_path = Path(hdf5_path)
    staging = hdf5_path.with_name(hdf5_path.name + ".partial")
    owned = env is None
    env = env if env is not None else RobosuiteEnv(task, max_steps=max_steps)
    try:
        collected = collect_episodes(
            lambda seed: run_expert_episode(env, task, seed),
            range(start_seed, start_seed + n_episodes),
            staging,
            desc=f"collect {task}",
        )
    finally:
        if owned:
            env.close()
    kept = [arrays(ep) for _, ep in kept_episodes(collected, False, task)]
    n_val = max(1, len(kept) // 10) if len(kept) > 1 else 0
    masks = {"train": range(len(kept) - n_val), "valid": range(len(kept) - n_val, len(kept))}
    write_robomimic_hdf5(hdf5_path, kept, env_args_json(task), masks=masks)
    remove_staging(staging)
    return collection_summary(task, collected, False, max_steps=max_steps)


def make_robosuite_store(
    path: str | os.PathLike,
    task: str,
    n_episodes: int = 100,
    start_seed: int = 0,
    max_steps: int = 300,
    obs_keys: Sequence[str] = ROBOMIMIC_LOW_DIM_KEYS,
    hdf5: str | None = None,
) -> ReplayBuffer:
    """Generator ``robosuite``: expert demos to ``<path>.hdf5`` (if missing), then to ``path``.

    With ``hdf5`` (e.g. robomimic's ``lift/ph/low_dim_v141.hdf5``) that file is converted
    instead and no demonstrations are collected.
    """
    path = Path(path)
    if hdf5 is not None:
        return robomimic_to_zarr(hdf5, path, list(obs_keys))
    hdf5_path = path.with_suffix(".hdf5")
    summary_path = path.with_suffix(".summary.json")
    if not hdf5_path.exists():
        summary = collect_robosuite_hdf5(hdf5_path, task, n_episodes, start_seed, max_steps)
        summary_path.write_text(json.dumps(summary, indent=2))
    return robomimic_to_zarr(hdf5_path, path, list(obs_keys))
