"""Rebuild a trained network (policy or image model) and its objective from a checkpoint.

No code is loaded: the checkpoint holds tensors and the plain config the network is rebuilt from.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from shortcut_policy.checkpoints.files import CheckpointError, load_checkpoint, unprefixed
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
