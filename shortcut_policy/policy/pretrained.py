"""Find, rebuild and write trained networks (policy or image model) and their objectives.

No code is loaded: the checkpoint holds tensors and the plain config the network is rebuilt from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from shortcut_policy.checkpoints.files import (
    POLICY_FILE,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    prefixed,
    save_checkpoint,
    unprefixed,
)
from shortcut_policy.checkpoints.meta import check_policy_meta
from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.data.obs_space import low_dim_keys
from shortcut_policy.models import build_network
from shortcut_policy.objectives import build_objective


def load_policy_network(
    path: str | os.PathLike, weights: str = "ema", device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any, dict]:
    """``(network, objective, meta)`` from a training checkpoint.

    ``weights`` is ``"ema"`` (what is evaluated and deployed) or ``"model"`` (the raw weights).
    The network is in eval mode with gradients disabled.
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    tensors, meta = load_checkpoint(path)
    check_policy_meta(meta, path)  # before anything is allocated from it
    spec, config = meta["spec"], meta["config"]
    normalizer = None
    if spec.get("kind") != "images":  # statistics come from the checkpoint, never refitted
        shapes = {key: tuple(spec["obs_shapes"][key]) for key in low_dim_keys(spec)}
        shapes["action"] = (spec["action_dim"],)
        normalizer = RangeNormalizer.empty_like(shapes)
    network = build_network(spec, config["model"], normalizer)
    state = unprefixed(weights, tensors)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the saved config ({err})") from err
    network.to(device).eval().requires_grad_(False)
    try:
        objective = build_objective(config["objective"])
    except ValueError as err:
        raise CheckpointError(f"{path}: bad objective in its config ({err})") from err
    return network, objective, meta


def resolve_policy_path(path: str | os.PathLike) -> Path:
    """A checkpoint file from a file, a saved-policy folder, a run folder or its checkpoints."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / POLICY_FILE).is_file():
        return path / POLICY_FILE
    for folder in (path / "checkpoints", path):
        newest = latest_checkpoint(folder)
        if newest is not None:
            return newest
        if (folder / "last.safetensors").is_file():
            return folder / "last.safetensors"
    raise CheckpointError(
        f"no policy at {path}: expected a .safetensors checkpoint, a folder with {POLICY_FILE}, "
        "or a training run folder with checkpoints/"
    )


def save_policy(
    path: str | os.PathLike,
    network: torch.nn.Module,
    meta: Mapping[str, Any],
    weights_dtype: torch.dtype = torch.float32,
    budget_success: Mapping[int, float] | None = None,
) -> Path:
    """``path/policy.safetensors`` (atomic): the weights as ``ema`` tensors in
    ``weights_dtype`` (the normalizer's statistics stay float32) and the plain metadata a
    policy is rebuilt from, with the success measured per budget when given."""
    plain = {
        "format": meta.get("format", 1),
        "step": meta.get("step"),
        "spec": meta["spec"],
        "config": {k: meta["config"][k] for k in ("task", "model", "objective")},
        "weights_dtype": str(weights_dtype).removeprefix("torch."),
    }
    if budget_success:
        plain["budget_success"] = {str(k): v for k, v in budget_success.items()}
    state = {
        key: value.to(weights_dtype)
        if value.is_floating_point() and not key.startswith("normalizer.")
        else value
        for key, value in network.state_dict().items()
    }
    target = Path(path) / POLICY_FILE
    save_checkpoint(target, prefixed("ema", state), plain)
    return target
