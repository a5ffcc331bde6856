"""The network a policy trains: normalizer + observation encoder + conditional action head.

``encode`` turns raw observations into the conditioning vector; ``forward`` is the head's
``net(x, t, d, cond)`` signature, so any objective can train it without knowing it is a policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.models.unet1d import ConditionalUnet1D


class LowDimObsEncoder(nn.Module):
    """Normalized low-dimensional observations, flattened: ``{k: (B, n_obs, *shape)} -> (B, F)``."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], n_obs_steps: int) -> None:
        super().__init__()
        self.keys = list(obs_shapes)
        self.out_dim = n_obs_steps * sum(math.prod(shape) for shape in obs_shapes.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[key].flatten(1) for key in self.keys], dim=-1)


class PolicyNetwork(nn.Module):
    """Everything a policy's weights hold.

    Args:
        spec: data description ``{"obs_shapes": {key: shape}, "action_dim", "horizon",
            "n_obs_steps", "action_key"}`` (plain data, saved in checkpoints).
        head: model config fields for :class:`ConditionalUnet1D` (``down_dims`` ...).
        normalizer: fitted statistics for every observation key and ``"action"``.
    """

    def __init__(
        self, spec: Mapping[str, Any], head: Mapping[str, Any], normalizer: RangeNormalizer
    ):
        super().__init__()
        self.spec = dict(spec)
        self.normalizer = normalizer
        self.obs_encoder = LowDimObsEncoder(
            {k: tuple(v) for k, v in spec["obs_shapes"].items()}, spec["n_obs_steps"]
        )
        self.head = ConditionalUnet1D(
            action_dim=spec["action_dim"], cond_dim=self.obs_encoder.out_dim, **head
        )

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw observations ``{key: (B, n_obs_steps, *shape)}`` -> conditioning ``(B, F)``."""
        normalized = {
            key: self.normalizer.normalize(key, obs[key]) for key in self.obs_encoder.keys
        }
        return self.obs_encoder(normalized)

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pair ``(x1, cond)``: normalized actions ``(B, H, Da)`` and conditioning."""
        return self.normalizer.normalize("action", batch["action"]), self.encode(batch["obs"])

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        return self.head(x, t, d, cond)

    def sample_shape(self, batch: int) -> tuple[int, int, int]:
        """Shape of one batch of normalized action chunks: ``(B, horizon, action_dim)``."""
        return (batch, self.spec["horizon"], self.spec["action_dim"])
