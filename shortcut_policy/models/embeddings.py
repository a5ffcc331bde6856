"""Embeddings of the two scalars every network is conditioned on: time ``t`` and step size ``d``.

By default (``step_embedding="level"``) the network embeds the *level* ``log2(1/d)`` (0 for
``d = 1``, 7 for ``d = 1/128``), which spaces the shortcut model's power-of-two step sizes
evenly, instead of ``d`` itself, which would crowd all the small steps near zero.
``step_embedding="length"`` embeds ``d`` on ``t``'s scale instead. MeanFlow needs that: its
target contains the network's derivative in ``d``, and the level's derivative
``1 / (d ln 2)`` (times the level scale, 100) is in the tens of thousands at ``d = 1/128``,
which buries the target in the derivative's noise. ``t`` in ``[0, 1]`` is scaled by
``time_scale`` (1000 by default) so the sinusoid frequencies resolve the ``1/M`` grid. MeanFlow
sets it to 1: the scale multiplies the derivative in ``t`` that its target holds.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_features(
    values: torch.Tensor, dim: int, max_period: float = 10000.0
) -> torch.Tensor:
    """Transformer-style features of ``values: (B,)`` -> ``(B, dim)`` (``dim`` even)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half
    )
    args = values.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def step_level(d: torch.Tensor) -> torch.Tensor:
    """``log2(1/d)``: the level of step size ``d`` in ``(0, 1]`` (0 for a single full step)."""
    return -torch.log2(d.float().clamp(min=1e-8))


class ScalarEmbedding(nn.Module):
    """Sinusoidal features of a scaled scalar followed by a small MLP: ``(B,) -> (B, dim)``."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        self.dim = dim
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_features(values * self.scale, self.dim))


STEP_EMBEDDINGS = ("level", "length")


class TimeStepEmbedding(nn.Module):
    """Embeds ``t`` (in [0, 1]) and ``d`` (in (0, 1]) and concatenates: ``(B, 2 * dim)``.

    ``step_embedding``: ``"level"`` embeds ``log2(1/d)`` (scaled by ``level_scale``),
    ``"length"`` embeds ``d`` itself on ``t``'s scale.
    """

    def __init__(
        self,
        dim: int,
        time_scale: float = 1000.0,
        level_scale: float = 100.0,
        step_embedding: str = "level",
    ) -> None:
        super().__init__()
        if step_embedding not in STEP_EMBEDDINGS:
            raise ValueError(
                f"model.step_embedding must be one of {STEP_EMBEDDINGS}, got {step_embedding!r}"
            )
        self.by_level = step_embedding == "level"
        self.t_embed = ScalarEmbedding(dim, time_scale)
        self.d_embed = ScalarEmbedding(dim, level_scale if self.by_level else time_scale)
        self.out_dim = 2 * dim

    def forward(self, t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        step = step_level(d) if self.by_level else d
        return torch.cat([self.t_embed(t), self.d_embed(step)], dim=-1)
