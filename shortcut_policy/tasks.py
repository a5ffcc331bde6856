"""From a task config to datasets: find (or generate) the store, split episodes, fit statistics."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from shortcut_policy.checkpoints.files import NoCheckpoint
from shortcut_policy.data.dataset import SequenceDataset, split_episodes
from shortcut_policy.data.images import ImageDataset, read_image_store
from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.data.obs_space import (
    add_derived,
    checked_against_store,
    low_dim_keys,
    stored_keys,
    task_observations,
)
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer

# dataset.generator name -> "module:function(path, **dataset.generator_args)" that writes a store.
GENERATORS = {
    "bimodal": "shortcut_policy.data.bimodal:make_bimodal_store",
    "push_t": "envs.push_t.demos:make_push_t_store",
    "digits": "shortcut_policy.data.images:make_digits_store",
    "metaworld": "envs.metaworld.demos:make_metaworld_store",
    "robosuite": "envs.robosuite.demos:make_robosuite_store",
    "robomimic": "shortcut_policy.data.robomimic_hdf5:make_robomimic_store",
}


# The top-level configs/ and data/pretrained/ are the packages shortcut_policy.configs and
# shortcut_policy.shipped (pyproject.toml maps them), so a clone, an editable install and a
# wheel each find their own, from any working folder.
def _packaged_folder(package: str, in_source_tree: str) -> Path:
    try:
        return Path(str(files(package)))
    except ModuleNotFoundError:  # a clone used without pip install: the folder beside the code
        return Path(__file__).resolve().parents[1] / in_source_tree


CONFIG_DIR = str(_packaged_folder("shortcut_policy.configs", "configs"))
# Policies shipped with the library, one folder per task (see data/pretrained/README.md).
PRETRAINED_DIR = _packaged_folder("shortcut_policy.shipped", "data/pretrained")


# task.env.name -> "module:function(**task.env)" building a gymnasium env for rollouts.
ENVIRONMENTS = {
    "push_t": "envs.push_t.policy_env:make_policy_env",
    "metaworld": "envs.metaworld.env:make_policy_env",
    "robosuite": "envs.robosuite.env:make_policy_env",
}


# Gymnasium ids for the same environments, with the extra each needs (None: always there).
GYM_IDS = {
    "shortcut_policy/PushT-v0": ("push_t", None),
    "shortcut_policy/MetaWorld-v0": ("metaworld", "metaworld"),
    "shortcut_policy/Robosuite-v0": ("robosuite", "robosuite"),
}


def register_gym_envs() -> list[str]:
    """Register :data:`GYM_IDS` with gymnasium (the simulators are imported only by
    ``gym.make``); ids whose extra is not installed are left out. Returns the ids registered.

        gym.make("shortcut_policy/PushT-v0", obs_mode="pixels")
        gym.make("shortcut_policy/Robosuite-v0", task="square", max_steps=400)
    """
    import gymnasium as gym

    registered = []
    for env_id, (name, extra) in GYM_IDS.items():
        if extra is not None and importlib.util.find_spec(extra) is None:
            continue
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=ENVIRONMENTS[name])
        registered.append(env_id)
    return registered


def env_factory(task_cfg: Any) -> functools.partial:
    """A picklable ``make_env()`` for the task's simulator (runs inside worker processes)."""
    env_cfg = dict(task_cfg.get("env") or {})
    name = env_cfg.pop("name", None)
    if name not in ENVIRONMENTS:
        raise ValueError(
            f"task {task_cfg['name']!r} has no simulator to roll out in (env.name={name!r}); "
            f"tasks with one: {sorted(ENVIRONMENTS)}. Evaluate it by its validation loss."
        )
    return functools.partial(import_callable(ENVIRONMENTS[name]), **env_cfg)


def check_env_observations(task_cfg: Any, spec: dict[str, Any]) -> None:
    """Refuse a dataset whose observation shapes differ from what the simulator produces.

    Diffusion Policy's Push-T file has 9 block keypoints where gym-pusht has 8: a policy
    trained on it cannot be rolled out in our simulator, so say so before training starts.
    """
    env = env_factory(task_cfg)()
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    for key, shape in spec["obs_shapes"].items():
        found = tuple(np.shape(obs[key])) if key in obs else None
        if found != tuple(shape):
            raise ValueError(
                f"the dataset's observation {key!r} has shape {tuple(shape)} but the "
                f"{task_cfg['name']} simulator gives {found}; train with eval_every=0 "
                "(no rollouts) or on data recorded in this simulator"
            )


def newest_checkpoint_for_task(
    task: str, runs_root: str | Path = "runs", pretrained_root: str | Path = PRETRAINED_DIR
) -> Path:
    """The most recently written checkpoint of any training run of ``task``; without one, the
    policy shipped with the repository (``data/pretrained/<task>/policy.safetensors``)."""
    found = sorted(Path(runs_root, task).glob("*/checkpoints/step_*.safetensors"), key=_mtime)
    if found:
        return found[-1]
    shipped = Path(pretrained_root, task, "policy.safetensors")
    if shipped.is_file():
        return shipped
    raise NoCheckpoint(
        f"no training run of task {task!r} under {runs_root}/{task} and no shipped policy at "
        f"{shipped}; train one (python -m shortcut_policy.train task={task}) or pass checkpoint=..."
    )


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


@dataclass
class TaskData:
    """Everything training needs from a task: datasets, statistics and the data spec."""

    train: Dataset  # SequenceDataset or ImageDataset
    val: Dataset | None
    normalizer: RangeNormalizer | None  # None for image tasks (pixels map to [-1, 1])
    spec: dict[str, Any]
    env_cfg: dict[str, Any] | None = None


def import_callable(target: str) -> Any:
    """The function named by a registry entry ``"package.module:function"``."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def generate_dataset(dataset_cfg: Any, path: Path, **overrides: Any) -> None:
    """Write the store at ``path`` with the task's generator and its ``generator_args``."""
    name = dataset_cfg.get("generator")
    if name not in GENERATORS:
        raise ValueError(
            f"no demonstration generator {name!r} (dataset.generator); known: {sorted(GENERATORS)}"
        )
    options = {**dict(dataset_cfg.get("generator_args") or {}), **overrides}
    import_callable(GENERATORS[name])(path, **options)


def ensure_dataset(dataset_cfg: Any) -> Path:
    """Path of the task's store, generating it first when missing and a generator is named."""
    path = Path(dataset_cfg["path"])
    if path.exists():
        return path
    if not dataset_cfg.get("generator"):
        raise FileNotFoundError(
            f"dataset not found at {path}; set dataset.path to an existing zarr store"
        )
    print(
        f"[data] {path} is missing: generating it with the {dataset_cfg['generator']!r} generator"
    )
    generate_dataset(dataset_cfg, path)
    return path


def load_task_data(task_cfg: Any, dataset_cfg: Any) -> TaskData:
    """Datasets for training and validation, split by episode, and a normalizer fitted on train.

    Image tasks (``task.kind: images``) load a labelled image store instead.
    """
    if task_cfg.get("kind") == "images":
        return load_image_data(task_cfg, dataset_cfg)
    described = task_observations(task_cfg)
    action_key = task_cfg["action_key"]
    path = ensure_dataset(dataset_cfg)
    buffer = ReplayBuffer.open(path, keys=[*stored_keys(described), action_key])
    add_derived(described, buffer.data, path)
    observations = checked_against_store(described, buffer.data, path)
    train_eps, val_eps = split_episodes(
        buffer.n_episodes, dataset_cfg["val_fraction"], dataset_cfg["split_seed"]
    )
    window = dict(
        obs_keys=list(observations),
        action_key=action_key,
        horizon=task_cfg["horizon"],
        n_obs_steps=task_cfg["n_obs_steps"],
        n_action_steps=task_cfg["n_action_steps"],
    )
    train = SequenceDataset(buffer, episodes=train_eps, **window)
    val = SequenceDataset(buffer, episodes=val_eps, **window) if len(val_eps) else None
    spec = {
        "task": task_cfg["name"],
        "obs_shapes": {key: entry["shape"] for key, entry in observations.items()},
        "obs_types": {key: entry["type"] for key, entry in observations.items()},
        "action_key": action_key,
        "action_dim": int(buffer.data[action_key].shape[-1]),
        "horizon": task_cfg["horizon"],
        "n_obs_steps": task_cfg["n_obs_steps"],
        "n_action_steps": task_cfg["n_action_steps"],
    }
    # Statistics for vectors only: frames map to [0, 1] by their type, and reading every
    # frame just to fit them would decode the whole store.
    arrays = train.episode_arrays([*low_dim_keys(spec), action_key], train_eps)
    arrays["action"] = arrays.pop(action_key)
    env_cfg = dict(task_cfg.get("env") or {}) or None
    return TaskData(train, val, RangeNormalizer.fit(arrays), spec, env_cfg)


def load_image_data(task_cfg: Any, dataset_cfg: Any) -> TaskData:
    """Train/validation split of a labelled image store, checked against the task's shape."""
    path = ensure_dataset(dataset_cfg)
    images, labels = read_image_store(path)
    expected = list(task_cfg["image_shape"])
    if list(images.shape[1:]) != expected:
        raise DatasetError(
            f"{path} holds images of shape {list(images.shape[1:])} but task.image_shape is "
            f"{expected}; set task.image_shape to match, or regenerate the store"
        )
    n_classes = int(task_cfg["num_classes"])
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DatasetError(
            f"{path} has labels {labels.min()}..{labels.max()}, outside 0..{n_classes - 1} "
            "(task.num_classes)"
        )
    order = np.random.default_rng(dataset_cfg["split_seed"]).permutation(len(labels))
    n_val = int(round(len(labels) * dataset_cfg["val_fraction"]))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    spec = {
        "task": task_cfg["name"],
        "kind": "images",
        "image_shape": expected,
        "num_classes": n_classes,
        "guidance_scale": float(task_cfg.get("guidance_scale", 1.0)),
    }
    val = ImageDataset(images[val_idx], labels[val_idx]) if n_val else None
    return TaskData(ImageDataset(images[train_idx], labels[train_idx]), val, None, spec)
