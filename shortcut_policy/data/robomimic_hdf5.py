"""robomimic's HDF5 demonstration layout, read and written with h5py, and conversion to zarr.

The layout (robomimic's low-dim datasets, e.g. lift/can/square "ph" ``low_dim_v141.hdf5``)::

    data                      attrs: total (steps over all demos), env_args (JSON string)
    data/demo_<i>             attrs: num_samples (T_i), optionally model_file (MJCF XML)
    data/demo_<i>/obs/<key>        (T_i, ...)  observation before each action
    data/demo_<i>/next_obs/<key>   (T_i, ...)  observation after it (optional here)
    data/demo_<i>/actions          (T_i, A)
    data/demo_<i>/states           (T_i, S)    MuJoCo's flattened state (time, qpos, qvel)
    data/demo_<i>/rewards, dones   (T_i,)
    mask/<filter>                  names of demos in a subset (e.g. train / valid), bytes

Demos are ordered by their number (``demo_2`` before ``demo_10``), as robomimic orders them.
The zarr store gets ``data/<obs key>`` for every requested key, ``data/action`` and
``meta/episode_ends``, plus ``meta/demo_index`` (the ``<i>`` of each episode).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer
from shortcut_policy.extras import require

# robomimic's low-dim "ph" observation keys that a state policy uses for lift / can / square.
ROBOMIMIC_LOW_DIM_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")


def _h5py():
    return require("h5py", "reading and writing robomimic HDF5 files", "robomimic")


def write_robomimic_hdf5(
    path: str | os.PathLike,
    episodes: Iterable[Mapping[str, Any]],
    env_args: str,
    masks: Mapping[str, Sequence[int]] | None = None,
) -> int:
    """Write ``episodes`` in robomimic's layout, atomically (``<path>.tmp`` then rename).

    Each episode is a dict with ``obs`` (key -> ``(T, ...)``), ``actions`` ``(T, A)``,
    ``states`` ``(T, S)``, ``rewards`` ``(T,)``, ``dones`` ``(T,)`` and optionally ``next_obs``
    and ``model_file`` (str). ``masks`` maps a filter name to episode indices. Returns the number
    of demos written.
    """
    h5py = _h5py()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    total, count = 0, 0
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for i, episode in enumerate(episodes):
            demo = data.create_group(f"demo_{i}")
            steps = len(episode["actions"])
            for part in ("obs", "next_obs"):
                for key, value in (episode.get(part) or {}).items():
                    if len(value) != steps:
                        raise ValueError(
                            f"demo_{i}: {part}/{key} has {len(value)} steps, actions {steps}"
                        )
                    demo.create_dataset(f"{part}/{key}", data=np.asarray(value))
            for key in ("actions", "states", "rewards", "dones"):
                demo.create_dataset(key, data=np.asarray(episode[key]))
            demo.attrs["num_samples"] = steps
            if episode.get("model_file"):
                demo.attrs["model_file"] = episode["model_file"]
            total += steps
            count += 1
        data.attrs["total"] = total
        data.attrs["env_args"] = env_args
        for name, indices in (masks or {}).items():
            names = np.array([f"demo_{i}".encode() for i in indices], dtype="S")
            f.create_dataset(f"mask/{name}", data=names)
    os.replace(tmp, path)
    return count


def demo_names(f, filter_key: str | None = None) -> list[str]:
    """Demo group names of an open file in robomimic's order, optionally one mask's subset."""
    if "data" not in f:
        raise DatasetError(f"{f.filename} has no 'data' group; it is not a robomimic HDF5 file")
    if filter_key is None:
        names = list(f["data"].keys())
    else:
        masks = sorted(f["mask"].keys()) if "mask" in f else []
        if filter_key not in masks:
            raise DatasetError(
                f"{f.filename} has no mask {filter_key!r}; its masks: {masks or 'none'}"
            )
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["mask"][filter_key]]
    demos = [name for name in names if re.fullmatch(r"demo_\d+", name)]
    if not demos:
        raise DatasetError(f"{f.filename} holds no data/demo_<i> groups")
    return sorted(demos, key=lambda name: int(name.split("_")[1]))


def read_robomimic_hdf5(
    path: str | os.PathLike,
    obs_keys: Sequence[str] = ROBOMIMIC_LOW_DIM_KEYS,
    action_key: str = "actions",
    filter_key: str | None = None,
) -> tuple[ReplayBuffer, dict[str, Any]]:
    """Episodes of a robomimic file as a :class:`ReplayBuffer` with ``data/<obs key>`` float32
    and ``data/action``; also returns ``{"env_args": dict | None, "demos": [names]}``.

    Raises :class:`DatasetError` naming the keys the file has when a requested one is missing.
    """
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no robomimic HDF5 file at {path}")
    episodes = []
    with h5py.File(path, "r") as f:
        names = demo_names(f, filter_key)
        for name in names:
            demo = f["data"][name]
            available = sorted(demo["obs"].keys()) if "obs" in demo else []
            missing = [key for key in obs_keys if key not in available]
            if missing:
                raise DatasetError(
                    f"{path} data/{name}/obs lacks {missing}; it has {available}. "
                    "Set the task's obs_keys (and the converter's obs_keys) to keys it has."
                )
            if action_key not in demo:
                raise DatasetError(
                    f"{path} data/{name} has no {action_key!r}; it has {sorted(demo.keys())}"
                )
            episode = {key: np.asarray(demo["obs"][key], dtype=np.float32) for key in obs_keys}
            episode["action"] = np.asarray(demo[action_key], dtype=np.float32)
            episodes.append(episode)
        raw_args = f["data"].attrs.get("env_args")
    env_args = json.loads(raw_args) if raw_args is not None else None
    try:
        buffer = ReplayBuffer.from_episodes(episodes)
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from None
    return buffer, {"env_args": env_args, "demos": names}


def robomimic_to_zarr(
    hdf5_path: str | os.PathLike,
    path: str | os.PathLike,
    obs_keys: Sequence[str] = ROBOMIMIC_LOW_DIM_KEYS,
    filter_key: str | None = None,
) -> ReplayBuffer:
    """Convert a robomimic file to our zarr store at ``path`` (atomic; see module doc)."""
    buffer, info = read_robomimic_hdf5(hdf5_path, obs_keys, filter_key=filter_key)
    demo_index = np.array([int(name.split("_")[1]) for name in info["demos"]], dtype=np.int64)
    summary = {
        "source": str(hdf5_path),
        "obs_keys": list(obs_keys),
        "filter_key": filter_key,
        "episodes": buffer.n_episodes,
        "env_args": info["env_args"],
    }
    buffer.save(
        Path(path),
        meta={"demo_index": demo_index},
        files={"summary.json": json.dumps(summary, indent=2)},
    )
    return buffer


def make_robomimic_store(
    path: str | os.PathLike,
    hdf5: str,
    obs_keys: Sequence[str] = ROBOMIMIC_LOW_DIM_KEYS,
    filter_key: str | None = None,
) -> ReplayBuffer:
    """Generator ``robomimic``: the zarr store at ``path`` from an existing robomimic file.

    For robomimic's own lift / can files, ``task=lift +dataset.generator_args.hdf5=<file>``
    does the same through the robosuite generator.
    """
    return robomimic_to_zarr(hdf5, path, obs_keys, filter_key)
