"""Camera encoders: a small ResNet with GroupNorm, spatial-softmax keypoints and crop augmentation.

Written here rather than taken from torchvision (which does not work with this CPU torch build).
GroupNorm instead of BatchNorm because policies are evaluated one observation at a time and the
EMA copy of the weights would otherwise carry stale batch statistics (Diffusion Policy makes the
same swap). Frames enter as ``(N, 3, H, W)`` floats in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class VisionConfig:
    """``model.vision``: how camera frames become features (defaults suit 84-96 px frames).

    Attributes:
        channels: channels of the residual stages; every stage after the first halves the size.
        groups: GroupNorm groups (reduced where a stage has fewer channels).
        pool: ``spatial_softmax`` (K expected keypoint positions) or ``avg`` (global average).
        keypoints: K for spatial softmax.
        feature_dim: features per camera and frame after the final linear layer.
        crop_shape: ``[h, w]`` random crop in training, centre crop at inference; null = none.
        shared: one encoder for all cameras (true) or one per camera (false).
        downsample: average-pool the (cropped) frame by this factor before the stem (1: off);
            2 quarters the cost of every layer, for a coarser view.
        channels_last: run the convolutions in channels-last memory layout (often faster on
            CPUs with oneDNN and on GPUs with tensor cores; same numbers).
    """

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    groups: int = 8
    pool: str = "spatial_softmax"
    keypoints: int = 32
    feature_dim: int = 64
    crop_shape: list[int] | None = None
    shared: bool = True
    downsample: int = 1
    channels_last: bool = False

    @classmethod
    def from_dict(cls, values: dict | None) -> VisionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"unknown model.vision field(s) {unknown}; known: {sorted(known)}")
        config = cls(**dict(values or {}))
        if config.pool not in ("spatial_softmax", "avg"):
            raise ValueError(f"model.vision.pool is {config.pool!r}; use spatial_softmax or avg")
        if not isinstance(config.downsample, int) or config.downsample < 1:
            raise ValueError(
                f"model.vision.downsample must be an integer >= 1, got {config.downsample!r}"
            )
        return config


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    while channels % groups:  # the largest group count <= groups that divides channels
        groups -= 1
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a skip path: ``(N, c_in, H, W) -> (N, c_out, H/s,
    W/s)``."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out, groups)
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out, groups))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


class SpatialSoftmax(nn.Module):
    """Feature maps ``(N, C, H, W)`` -> K keypoints' expected ``(x, y)`` in [-1, 1], ``(N, 2K)``.

    Each keypoint is a softmax over the positions of one learned 1x1 projection of the maps, so
    the features say *where* things are, which is what a manipulation policy needs.
    """

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        logits = self.project(maps)
        n, k, h, w = logits.shape
        weights = torch.softmax(logits.flatten(2) / self.log_temperature.exp(), dim=-1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=maps.device, dtype=weights.dtype),
            torch.linspace(-1, 1, w, device=maps.device, dtype=weights.dtype),
            indexing="ij",
        )
        expected_x = (weights * xs.reshape(1, 1, -1)).sum(-1)
        expected_y = (weights * ys.reshape(1, 1, -1)).sum(-1)
        return torch.stack([expected_x, expected_y], dim=-1).reshape(n, 2 * k)


class ConvEncoder(nn.Module):
    """ResNet-style encoder: frames ``(N, 3, H, W)`` in [0, 1] -> features ``(N, feature_dim)``.

    A 5x5 stride-2 stem and a 3x3 stride-2 max-pool take the frame to a quarter of its size
    (84 px -> 21 px) before the residual stages: on a CPU most of the cost is in the
    full-resolution layers, so they are kept to one.
    """

    def __init__(self, config: VisionConfig, in_channels: int = 3) -> None:
        super().__init__()
        widths = list(config.channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 5, 2, 2, bias=False),
            _norm(widths[0], config.groups),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        self.stages = nn.Sequential(
            *(
                ResidualBlock(c_in, c_out, 1 if i == 0 else 2, config.groups)
                for i, (c_in, c_out) in enumerate(zip([widths[0], *widths], widths))
            )
        )
        if config.pool == "spatial_softmax":
            self.pool = SpatialSoftmax(widths[-1], config.keypoints)
            pooled = 2 * config.keypoints
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            pooled = widths[-1]
        self.out = nn.Linear(pooled, config.feature_dim)
        self.downsample, self.channels_last = config.downsample, config.channels_last
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames * 2 - 1
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stages(self.stem(x))
        return self.out(self.pool(x))


def crop_frames(frames: torch.Tensor, shape: tuple[int, int] | None, random: bool) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C, h, w)``: a random window per frame (training) or the centre.

    Random offsets come from torch's global generator, which training seeds per step, so a
    resumed run crops exactly as an uninterrupted one.
    """
    if shape is None:
        return frames
    n, _, height, width = frames.shape
    h, w = shape
    if h > height or w > width:
        raise ValueError(f"crop {h}x{w} is larger than the {height}x{width} frames")
    if not random:
        top, left = (height - h) // 2, (width - w) // 2
        return frames[:, :, top : top + h, left : left + w]
    top = torch.randint(0, height - h + 1, (n, 1), device=frames.device)
    left = torch.randint(0, width - w + 1, (n, 1), device=frames.device)
    rows = (top + torch.arange(h, device=frames.device))[:, None, :, None]  # (N, 1, h, 1)
    cols = (left + torch.arange(w, device=frames.device))[:, None, None, :]  # (N, 1, 1, w)
    batch = torch.arange(n, device=frames.device)[:, None, None, None]
    channel = torch.arange(frames.shape[1], device=frames.device)[None, :, None, None]
    return frames[batch, channel, rows, cols]


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """Camera frames ``(..., H, W, 3)`` (uint8 0..255, or float 0..1) -> ``(..., 3, H, W)`` float
    in [0, 1]."""
    unit = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    return unit.movedim(-1, -3)
