"""One description of a task's observations: key -> type and shape, from the task config.

The dataset, the normalizer, the encoder and the policy's input checks all read it, so a key,
shape or type is stated once. A task config gives either

    obs:                                   # full form
      img: {type: rgb, shape: [96, 96, 3]}    # camera frames, H x W x 3 uint8, as cameras give
      agent_pos: {type: low_dim, shape: [2]}   # a vector (any shape), normalized to [-1, 1]

or the short form ``obs_keys: [keypoint, state]`` (all low-dimensional; shapes from the store).
A vector may also be read from columns of another stored key, so a store that keeps it only
inside a larger state trains without conversion (Diffusion Policy's Push-T files keep the
pusher's position as ``state[:, :2]``)::

      agent_pos: {type: low_dim, shape: [2], source: state, columns: [0, 2]}  # state[..., 0:2]

Checkpoints keep it as ``spec["obs_shapes"]`` and ``spec["obs_types"]`` (plain data; a spec
without ``obs_types`` is all low-dimensional).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shortcut_policy.data.replay_buffer import DatasetError

LOW_DIM, RGB = "low_dim", "rgb"
OBS_TYPES = (LOW_DIM, RGB)


def task_observations(task_cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"type", "shape" (list or None)}}`` from ``task.obs`` or ``task.obs_keys``."""
    if task_cfg.get("obs") is not None and task_cfg.get("obs_keys") is not None:
        raise ValueError(f"task {task_cfg.get('name')!r} sets both obs and obs_keys; keep one")
    if task_cfg.get("obs") is None:
        return {key: {"type": LOW_DIM, "shape": None} for key in task_cfg["obs_keys"]}
    described = {}
    for key, entry in task_cfg["obs"].items():
        kind = entry.get("type", LOW_DIM)
        if kind not in OBS_TYPES:
            raise ValueError(f"task.obs.{key}.type is {kind!r}; known types: {list(OBS_TYPES)}")
        shape = list(entry["shape"]) if entry.get("shape") is not None else None
        if kind == RGB and (shape is None or len(shape) != 3 or shape[2] != 3):
            raise ValueError(
                f"task.obs.{key} is a camera (type rgb): give its shape as [H, W, 3], got {shape}"
            )
        described[key] = {"type": kind, "shape": shape, **derived_from(key, entry, kind)}
    return described


def derived_from(key: str, entry: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``{"source", "columns"}`` of an observation read from columns of another stored key."""
    if entry.get("source") is None:
        if entry.get("columns") is not None:
            raise ValueError(f"task.obs.{key}.columns needs task.obs.{key}.source (a stored key)")
        return {}
    columns = list(entry.get("columns") or [])
    valid = len(columns) == 2 and all(isinstance(c, int) for c in columns)
    if kind != LOW_DIM or not valid or not 0 <= columns[0] < columns[1]:
        raise ValueError(
            f"task.obs.{key} reads columns of data/{entry['source']}: it must be low_dim with "
            f"columns: [start, stop] (0 <= start < stop), got type {kind}, columns {columns}"
        )
    return {"source": str(entry["source"]), "columns": columns}


def stored_keys(observations: Mapping[str, dict[str, Any]]) -> list[str]:
    """The store keys the observations are read from (a derived one reads its source)."""
    return list(dict.fromkeys(entry.get("source") or key for key, entry in observations.items()))


def add_derived(
    observations: Mapping[str, dict[str, Any]], store: dict[str, Any], path: Any
) -> None:
    """Put each derived observation into ``store`` (its columns of the source array)."""
    for key, entry in observations.items():
        if entry.get("source") is None:
            continue
        source = np.asarray(store[entry["source"]])
        start, stop = entry["columns"]
        if source.ndim != 2 or stop > source.shape[1]:
            raise DatasetError(
                f"{path}: task.obs.{key} takes columns {start}:{stop} of data/{entry['source']}, "
                f"which has shape {list(source.shape[1:])} per step"
            )
        store[key] = source[:, start:stop]


def checked_against_store(
    observations: Mapping[str, dict[str, Any]], store: Mapping[str, Any], path: Any
) -> dict[str, dict[str, Any]]:
    """The description with every shape filled in from the store, or a ``DatasetError``.

    ``store`` maps keys to arrays (or lazy zarr arrays) ``(N, *shape)``.
    """
    filled = {}
    for key, entry in observations.items():
        found = list(store[key].shape[1:])
        if entry["shape"] is not None and found != list(entry["shape"]):
            raise DatasetError(
                f"{path}: data/{key} has shape {found} per step but the task says "
                f"{list(entry['shape'])}; fix task.obs.{key}.shape or regenerate the store"
            )
        if entry["type"] == RGB and np.dtype(store[key].dtype) != np.uint8:
            raise DatasetError(
                f"{path}: camera data/{key} is {store[key].dtype}; store frames as uint8 H x W x 3"
            )
        filled[key] = {"type": entry["type"], "shape": found}
    return filled


def obs_types(spec: Mapping[str, Any]) -> dict[str, str]:
    """``{key: "low_dim" | "rgb"}`` of a policy spec (older specs: all low-dimensional)."""
    types = spec.get("obs_types") or {}
    return {key: types.get(key, LOW_DIM) for key in spec["obs_shapes"]}


def low_dim_keys(spec: Mapping[str, Any]) -> list[str]:
    return [key for key, kind in obs_types(spec).items() if kind == LOW_DIM]


def rgb_keys(spec: Mapping[str, Any]) -> list[str]:
    return [key for key, kind in obs_types(spec).items() if kind == RGB]
