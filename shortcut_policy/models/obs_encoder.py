"""Observations -> one conditioning vector: normalized vectors and camera features, per frame.

"Hybrid" observations (cameras plus low-dimensional state) are concatenated key by key: each
low-dimensional key's ``n_obs_steps`` frames flattened, in spec order, then each camera's
``n_obs_steps x feature_dim`` features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from shortcut_policy.data.obs_space import low_dim_keys, rgb_keys
from shortcut_policy.models.vision import ConvEncoder, VisionConfig, crop_frames, frames_to_unit

SHARED = "shared"


class ObservationEncoder(nn.Module):
    """``{key: (B, n_obs_steps, *shape)} -> (B, out_dim)``.

    Low-dimensional values must arrive normalized; camera frames arrive as they are stored
    (``(B, T, H, W, 3)`` uint8, or float in [0, 1]). Crops are random in ``train()`` mode and
    central in ``eval()`` mode.

    Args:
        spec: the policy's data spec (``obs_shapes``, ``obs_types``, ``n_obs_steps``).
        vision: ``model.vision`` fields (see :class:`VisionConfig`); unused without cameras.
    """

    def __init__(self, spec: Mapping[str, Any], vision: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        shapes = {key: tuple(shape) for key, shape in spec["obs_shapes"].items()}
        self.low_dim_keys, self.rgb_keys = low_dim_keys(spec), rgb_keys(spec)
        self.config = VisionConfig.from_dict(dict(vision or {}))
        self.crop_shape = tuple(self.config.crop_shape) if self.config.crop_shape else None
        for key in self.rgb_keys:
            self._check_crop(key, shapes[key])
        names = [SHARED] if self.config.shared else self.rgb_keys
        self.cameras = nn.ModuleDict(
            {name: ConvEncoder(self.config) for name in (names if self.rgb_keys else [])}
        )
        per_frame = sum(math.prod(shapes[key]) for key in self.low_dim_keys)
        per_frame += len(self.rgb_keys) * self.config.feature_dim
        self.out_dim = spec["n_obs_steps"] * per_frame

    def _check_crop(self, key: str, shape: tuple[int, ...]) -> None:
        if self.crop_shape and (self.crop_shape[0] > shape[0] or self.crop_shape[1] > shape[1]):
            raise ValueError(
                f"model.vision.crop_shape {list(self.crop_shape)} is larger than camera {key!r}'s "
                f"{shape[0]}x{shape[1]} frames; choose a smaller crop"
            )

    def augment(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Camera frames randomly cropped to ``crop_shape`` (dtype kept); other keys unchanged.

        Training calls this once per batch so that the student and its EMA teacher encode the
        same crops (the teacher is in eval mode and would otherwise take the centre).
        """
        out = dict(obs)
        for key in self.rgb_keys if self.crop_shape else []:
            frames = obs[key]  # (B, T, H, W, 3)
            flat = frames.flatten(0, 1).movedim(-1, -3)
            cropped = crop_frames(flat, self.crop_shape, random=True).movedim(-3, -1)
            out[key] = cropped.reshape(*frames.shape[:2], *cropped.shape[1:])
        return out

    def camera_features(self, key: str, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, H, W, 3)`` (full, or already cropped by :meth:`augment`) -> features
        ``(B, T * feature_dim)``."""
        batch, steps = frames.shape[:2]
        unit = frames_to_unit(frames.flatten(0, 1))
        if tuple(unit.shape[-2:]) != self.crop_shape:
            unit = crop_frames(unit, self.crop_shape, random=self.training)
        encoder = self.cameras[SHARED if self.config.shared else key]
        return encoder(unit).reshape(batch, steps * self.config.feature_dim)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[key].flatten(1) for key in self.low_dim_keys]
        parts += [self.camera_features(key, obs[key]) for key in self.rgb_keys]
        return torch.cat(parts, dim=-1)
