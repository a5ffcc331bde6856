"""Networks: the policy's action head and observation encoders, and the image DiT."""

from __future__ import annotations

from collections.abc import Mapping
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
