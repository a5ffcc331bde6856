"""What a checkpoint's metadata may say, checked before any network is built from it.

A checkpoint's JSON decides what is allocated: observation shapes, the horizon, the U-Net's
widths, DDPM's schedule length. A file from elsewhere could ask for a 1e12-element buffer, or
name a ``_target_`` for a constructor. :func:`check_policy_meta` refuses, with a
:class:`CheckpointError`, metadata that lacks a part, holds a key no network here reads, or a
number beyond sane bounds (far above any real robot policy or image model), so a hostile or
corrupt file fails at load, not in the middle of an allocation.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from shortcut_policy.checkpoints.files import CheckpointError

MAX_DIM = 4096  # any one size: a shape entry, a width, a horizon, a step count
MAX_ELEMENTS = 1 << 24  # elements of one observation (a 2048 x 2048 x 4 frame)

SPEC_KEYS = {
    "task": "str",
    "kind": "str",
    "obs_shapes": "shapes",
    "obs_types": "types",
    "action_key": "str",
    "action_dim": "size",
    "horizon": "size",
    "n_obs_steps": "size",
    "n_action_steps": "size",
    "image_shape": "shape",
    "num_classes": "size",
    "guidance_scale": "number",
}
MODEL_KEYS = {
    "name": "str",
    "arch": "str",
    "down_dims": "shape",
    "kernel_size": "size",
    "embed_dim": "size",
    "n_groups": "size",
    "vision": "vision",
    "patch_size": "size",
    "hidden_size": "size",
    "depth": "size",
    "num_heads": "size",
    "mlp_ratio": "number",
    "step_embedding": "str",
    "time_scale": "number",
    "class_dropout": "number",
    "prefix_max": "count",
}
VISION_KEYS = {
    "channels": "shape",
    "groups": "size",
    "pool": "str",
    "keypoints": "size",
    "feature_dim": "size",
    "crop_shape": "shape",
    "shared": "bool",
    "downsample": "size",
    "channels_last": "bool",
}


def check_policy_meta(meta: Any, path: object) -> None:
    """Raise :class:`CheckpointError` unless ``meta`` has a sane ``spec`` and ``config``."""
    problems: list[str] = []
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{path}: metadata is {type(meta).__name__}, not a JSON object")
    spec, config = meta.get("spec"), meta.get("config")
    if not isinstance(spec, Mapping):
        problems.append("'spec' (the task's shapes) is missing")
    else:
        problems += _check_fields("spec", spec, SPEC_KEYS)
        missing = [k for k in ("task",) if k not in spec]
        if spec.get("kind") != "images":
            missing += [
                k
                for k in ("obs_shapes", "action_dim", "horizon", "n_obs_steps", "n_action_steps")
                if k not in spec
            ]
        problems += [f"spec.{key} is missing" for key in missing]
    if not isinstance(config, Mapping):
        problems.append("'config' (model and objective) is missing")
    else:
        for part in ("model", "objective"):
            if not isinstance(config.get(part), Mapping):
                problems.append(f"config.{part} is missing")
        if isinstance(config.get("model"), Mapping):
            problems += _check_fields("config.model", config["model"], MODEL_KEYS)
        if isinstance(config.get("objective"), Mapping):
            problems += _check_objective(config["objective"])
    if problems:
        raise CheckpointError(
            f"{path}: refused before building anything, its metadata is not a policy's or image "
            "model's from this library: " + "; ".join(problems)
        )


def check_training_meta(meta: Any, path: object) -> None:
    """Raise :class:`CheckpointError` unless ``meta`` is a resumable training checkpoint's: a
    policy's or image model's metadata plus the step and the optimizer's plain state."""
    check_policy_meta(meta, path)
    problems = []
    step = meta.get("step")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        problems.append(f"'step' is {_short(step)}, not a count of steps")
    if not isinstance(meta.get("optimizer"), Mapping):
        problems.append("'optimizer' (the optimizer's plain state) is missing")
    if problems:
        raise CheckpointError(
            f"{path}: cannot resume from it, it is not a training checkpoint of this library: "
            + "; ".join(problems)
            + " (a file written by save_pretrained holds a policy, not a run: start a new run_dir)"
        )


def _check_fields(where: str, fields: Mapping[str, Any], known: Mapping[str, str]) -> list[str]:
    problems = []
    for key, value in fields.items():
        name = f"{where}.{key}"
        if key not in known:
            reason = "checkpoints never name code" if str(key).startswith("_") else "unknown key"
            problems.append(f"{name}: {reason}")
            continue
        kind = known[key]
        if kind == "vision":
            if not isinstance(value, Mapping):
                problems.append(f"{name} must be a mapping")
            else:
                problems += _check_fields(name, value, VISION_KEYS)
            continue
        problem = _value_problem(kind, value)
        if problem:
            problems.append(f"{name}={_short(value)} {problem}")
    return problems


def _check_objective(objective: Mapping[str, Any]) -> list[str]:
    """Field names are the objective classes' to check; numbers here must be sane."""
    problems = []
    for key, value in objective.items():
        if str(key).startswith("_"):
            problems.append(f"config.objective.{key}: checkpoints never name code")
        elif _is_number(value) and abs(value) > 1_000_000:
            problems.append(f"config.objective.{key}={_short(value)} is out of range")
    return problems


def _value_problem(kind: str, value: Any) -> str | None:
    if kind == "str":
        return None if isinstance(value, str) else "must be a string"
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "number":
        return None if _is_number(value) and abs(value) <= 1e6 else "must be a modest number"
    if kind == "size":
        return None if _is_size(value) else f"must be an integer in [1, {MAX_DIM}]"
    if kind == "count":
        ok = value == 0 or _is_size(value)
        return None if ok else f"must be an integer in [0, {MAX_DIM}]"
    if kind == "shape":
        return _shape_problem(value)
    if kind == "types":
        ok = isinstance(value, Mapping) and all(v in ("low_dim", "rgb") for v in value.values())
        return None if ok else "must map keys to low_dim or rgb"
    if kind == "shapes":
        if not isinstance(value, Mapping) or not value:
            return "must map observation keys to shapes"
        return next((f"[{k!r}] {p}" for k, v in value.items() if (p := _shape_problem(v))), None)
    raise AssertionError(kind)


def _shape_problem(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= 4:
        return "must be a list of 1 to 4 sizes"
    if not all(_is_size(v) for v in value):
        return f"must hold integers in [1, {MAX_DIM}]"
    elements = 1
    for v in value:
        elements *= v
    return None if elements <= MAX_ELEMENTS else f"has {elements} elements (at most {MAX_ELEMENTS})"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DIM


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
