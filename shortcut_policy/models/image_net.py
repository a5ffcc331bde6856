"""The network an image task trains: a class-conditional DiT plus class dropout and guidance.

Like :class:`~shortcut_policy.models.policy_net.PolicyNetwork`, it offers the training loop
``prepare_batch(batch) -> (x1, cond)`` and the objective ``net(x, t, d, cond)``; here ``x1`` is
the image batch in [-1, 1] and ``cond`` the class labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from shortcut_policy.models.dit import DiT


class ImageGenerator(nn.Module):
    """Class-conditional image network.

    Args:
        spec: ``{"task", "kind": "images", "image_shape": [C, H, W], "num_classes"}``.
        model: :class:`DiT` fields (``patch_size``, ``hidden_size``, ``depth``, ``num_heads``,
            ``mlp_ratio``) and ``class_dropout``, the fraction of training labels replaced by
            the null label so that the same network also learns the unconditional model.
    """

    # The conditioning (labels) does not depend on the weights, so an EMA teacher can use the
    # student's labels, dropped rows included.
    cond_from_weights = False

    def __init__(self, spec: Mapping[str, Any], model: Mapping[str, Any]) -> None:
        super().__init__()
        fields = dict(model)
        self.class_dropout = float(fields.pop("class_dropout", 0.1))
        self.spec = dict(spec)
        channels, height, width = spec["image_shape"]
        if height != width:
            raise ValueError(f"DiT takes square images, got {height}x{width}")
        self.dit = DiT(height, channels, spec["num_classes"], **fields)

    def augment(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch as it is (class dropout happens in :meth:`prepare_batch`)."""
        return dict(batch)

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (B, C, H, W) in [-1, 1], labels (B,))``; in training mode a random
        ``class_dropout`` of the labels becomes the null label."""
        labels = batch["label"]
        if self.training and self.class_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.class_dropout
            labels = torch.where(drop, torch.full_like(labels, self.dit.null_label), labels)
        return batch["image"], labels

    def free_positions(self, batch: Mapping[str, Any]) -> None:
        """Every pixel counts in the loss (None): an image has no given part."""
        return None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        return self.dit(x, t, d, labels)

    def null_condition(self, labels: torch.Tensor) -> torch.Tensor:
        """The null label in place of every label ``(B,)``: the unconditional model's input."""
        return torch.full_like(labels, self.dit.null_label)

    def sample_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.spec["image_shape"])
