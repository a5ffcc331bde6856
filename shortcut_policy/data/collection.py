"""One way to collect demonstrations: one episode per seed, staged, resumable, one summary.

Every simulator's collector (Push-T, MetaWorld, robosuite) gives a function ``seed -> episode``
and lets :func:`collect_episodes` run it. Each finished episode is saved at once to
``<staging>/seed_<seed>.npz`` (atomically), so a collection that is interrupted resumes from
the seeds already done, and the store itself is written only at the end (atomically too), so
it never looks complete before it is. :func:`collection_summary` gives every collector the
same ``summary.json``.

An episode is a map of arrays (nested maps, such as robomimic's ``obs``, are allowed) plus
``success`` (bool) and optionally ``score`` (float).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from shortcut_policy.data.replay_buffer import DatasetError

Episode = dict[str, Any]
OUTCOME_KEYS = ("success", "score")


def collect_episodes(
    run_episode: Callable[[int], Episode],
    seeds: Iterable[int],
    staging: str | os.PathLike,
    workers: int = 1,
    desc: str = "collect",
) -> list[tuple[int, Episode]]:
    """``(seed, episode)`` for every seed, in order; seeds already staged are not run again.

    ``workers > 1`` runs episodes in spawned processes (``run_episode`` must then be picklable:
    a module-level function or a ``functools.partial`` of one). The staging folder is kept;
    call :func:`remove_staging` once the store is written.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("n_episodes must be at least 1, got 0")
    staging = Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    pending = [seed for seed in seeds if not _staged(staging, seed).exists()]
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(pending), desc=desc)
    for seed, episode in _run(run_episode, pending, workers):
        _stage(staging, seed, episode)
        bar.update(1)
    bar.close()
    return [(seed, _load(_staged(staging, seed))) for seed in seeds]


def _run(
    run_episode: Callable[[int], Episode], seeds: list[int], workers: int
) -> Iterator[tuple[int, Episode]]:
    if workers <= 1:
        for seed in seeds:
            yield seed, run_episode(seed)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_Seeded(run_episode), seeds)


class _Seeded:
    """``seed -> (seed, run_episode(seed))``, picklable for a process pool."""

    def __init__(self, run_episode: Callable[[int], Episode]) -> None:
        self.run_episode = run_episode

    def __call__(self, seed: int) -> tuple[int, Episode]:
        return seed, self.run_episode(seed)


def _staged(staging: Path, seed: int) -> Path:
    return staging / f"seed_{seed}.npz"


def _stage(staging: Path, seed: int, episode: Mapping[str, Any]) -> None:
    target = _staged(staging, seed)
    tmp = target.with_name(target.stem + ".tmp.npz")
    np.savez(tmp, **_flat(episode))
    os.replace(tmp, target)  # a killed collection leaves no half-written episode behind


def _flat(episode: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat = {}
    for key, value in episode.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = np.asarray(value)
    return flat


def _load(path: Path) -> Episode:
    episode: Episode = {}
    with np.load(path) as saved:
        for name in saved.files:
            *parents, key = name.split("/")
            node = episode
            for parent in parents:
                node = node.setdefault(parent, {})
            node[key] = saved[name]
    for key in OUTCOME_KEYS:
        if key in episode:
            episode[key] = episode[key].item()
    episode["success"] = bool(episode["success"])
    return episode


def kept_episodes(
    collected: list[tuple[int, Episode]], keep_failed: bool, what: str
) -> list[tuple[int, Episode]]:
    """The episodes to store (successful ones unless ``keep_failed``), or a DatasetError."""
    kept = [(seed, ep) for seed, ep in collected if ep["success"] or keep_failed]
    if not kept:
        raise DatasetError(
            f"the {what} expert succeeded in none of {len(collected)} episodes; nothing to "
            "store (pass keep_failed=true to store failures, or check the expert)"
        )
    return kept


def arrays(episode: Mapping[str, Any]) -> Episode:
    """The episode without its outcome fields (what goes into a store)."""
    return {key: value for key, value in episode.items() if key not in OUTCOME_KEYS}


def collection_summary(
    task: str, collected: list[tuple[int, Episode]], keep_failed: bool, **settings: Any
) -> dict[str, Any]:
    """The one ``summary.json`` format: what was attempted, kept and failed, and the settings."""
    kept = [seed for seed, ep in collected if ep["success"] or keep_failed]
    failed = [seed for seed, ep in collected if not ep["success"]]
    return {
        "task": task,
        "attempted": len(collected),
        "kept": len(kept),
        "success_rate": 1.0 - len(failed) / len(collected),
        "keep_failed": keep_failed,
        "seeds": kept,
        "failed_seeds": failed,
        **settings,
    }


def remove_staging(staging: str | os.PathLike) -> None:
    shutil.rmtree(staging, ignore_errors=True)
