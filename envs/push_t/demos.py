"""Push-T demonstrations from the scripted expert, written in Diffusion Policy's zarr layout.

Each episode is first saved to ``<store>.partial/seed_<seed>.npz``; only when every seed is done
is the zarr store built (atomically, see ``ReplayBuffer.save``) and the partial folder removed.
So an interrupted collection never leaves a store that looks complete, and running the same
command again resumes from the episodes already saved. Workers are separate processes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.push_t.expert import EXPERT_VERSION
from envs.push_t.expert_episode import run_expert_episode
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer

STORE_KEYS = ("state", "keypoint", "action")


def _collect_one(job: tuple[int, str, bool]) -> tuple[int, bool]:
    seed, partial, render = job
    episode = run_expert_episode(seed, render=render)
    arrays = {key: episode[key] for key in STORE_KEYS}
    if render:  # the camera observation of Diffusion Policy's image task: frame + pusher x, y
        arrays["img"] = episode["img"]
        arrays["agent_pos"] = episode["state"][:, :2]
    target = Path(partial) / f"seed_{seed}.npz"
    tmp = target.with_name(target.stem + ".tmp.npz")
    np.savez(tmp, **arrays, success=episode["success"], score=episode["score"])
    os.replace(tmp, target)  # a killed worker leaves no half-written episode behind
    return seed, bool(episode["success"])


def _pending_seeds(partial: Path, seeds: list[int]) -> list[int]:
    return [seed for seed in seeds if not (partial / f"seed_{seed}.npz").exists()]


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
    partial = path.with_name(path.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    seeds = list(range(start_seed, start_seed + n_episodes))
    pending = _pending_seeds(partial, seeds)
    jobs = [(seed, str(partial), render) for seed in pending]
    bar = tqdm(total=n_episodes, initial=n_episodes - len(pending), desc="collect push_t")
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_collect_one, jobs):
                bar.update(1)
    else:
        for job in jobs:
            _collect_one(job)
            bar.update(1)
    bar.close()
    buffer = _build_store(path, partial, seeds, render, keep_failed)
    shutil.rmtree(partial)
    return buffer


def _build_store(
    path: Path, partial: Path, seeds: list[int], render: bool, keep_failed: bool
) -> ReplayBuffer:
    episodes, outcomes = [], []
    for seed in seeds:
        with np.load(partial / f"seed_{seed}.npz") as saved:
            outcomes.append((seed, bool(saved["success"]), float(saved["score"])))
            if outcomes[-1][1] or keep_failed:
                episodes.append(
                    {key: saved[key] for key in saved.files if key not in ("success", "score")}
                )
    kept = [row for row in outcomes if row[1] or keep_failed]
    if not episodes:
        raise DatasetError(
            f"the expert succeeded in none of {len(seeds)} episodes; nothing to store "
            "(pass keep_failed=true to store failures, or check the expert)"
        )
    summary = {
        "task": "push_t",
        "expert_version": EXPERT_VERSION,
        "attempted": len(outcomes),
        "kept": len(kept),
        "success_rate": sum(row[1] for row in outcomes) / len(outcomes),
        "keep_failed": keep_failed,
        "seeds": [row[0] for row in kept],
        "failed_seeds": [row[0] for row in outcomes if not row[1]],
        "render": render,
    }
    meta = {
        "episode_seeds": np.array([row[0] for row in kept], dtype=np.int64),
        "episode_success": np.array([row[1] for row in kept], dtype=bool),
        "episode_score": np.array([row[2] for row in kept], dtype=np.float32),
    }
    buffer = ReplayBuffer.from_episodes(episodes)
    buffer.save(path, meta=meta, files={"summary.json": json.dumps(summary, indent=2)})
    return buffer
