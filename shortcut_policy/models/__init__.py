"""Networks: the policy's action head and observation encoders, and the image DiT."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from torch import nn

ARCHITECTURES = {"unet1d": "policies (task with obs_keys)", "dit": "images (task kind: images)"}


def build_network(
    spec: Mapping[str, Any], model: Mapping[str, Any], normalizer: Any = None
) -> nn.Module:
    """The network for a task's data ``spec`` from a model config (``name``, ``arch``, fields).

    ``arch: dit`` builds an :class:`~shortcut_policy.models.image_net.ImageGenerator` for image
    tasks; anything else (the default ``unet1d``) a
    :class:`~shortcut_policy.models.policy_net.PolicyNetwork` with ``normalizer``.
    """
    fields = {key: value for key, value in model.items() if key not in ("name", "arch")}
    arch = model.get("arch", "unet1d")
    kind = "images" if spec.get("kind") == "images" else "policy"
    if (arch == "dit") != (kind == "images"):
        raise ValueError(
            f"model {model.get('name')!r} (arch {arch}) cannot train task {spec.get('task')!r} "
            f"({kind}); architectures: {ARCHITECTURES}"
        )
    if arch == "dit":
        from shortcut_policy.models.image_net import ImageGenerator

        return ImageGenerator(spec, fields)
    from shortcut_policy.models.policy_net import PolicyNetwork

    return PolicyNetwork(spec, fields, normalizer)


def model_as_built(model: Mapping[str, Any]) -> dict[str, Any]:
    """``model`` with its ``vision`` block filled to the defaults, as the network is built.

    Fields added to ``model.vision`` since a checkpoint was saved (``downsample``,
    ``channels_last``) then compare equal to their old values when a run resumes.
    """
    from shortcut_policy.models.vision import VisionConfig

    if model.get("vision") is None:
        return dict(model)
    return {**model, "vision": asdict(VisionConfig.from_dict(model["vision"]))}
