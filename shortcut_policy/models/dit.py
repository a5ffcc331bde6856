"""Diffusion Transformer (Peebles & Xie, 2023) conditioned on time, step size and class label.

``x: (B, C, H, W)`` -> a tensor of the same shape. The image is cut into ``p x p`` patches
(one token each), fixed 2D sin-cos position embeddings are added, and ``depth`` transformer
blocks are modulated by one conditioning vector ``c = emb(t, d) + emb(label)`` through adaLN-Zero:
every block's shift/scale/gate layer starts at zero, as does the final projection, so the whole
network outputs exactly zero at initialisation and each block starts as the identity.

Label ``num_classes`` is the "null" label: it stands for "no class" and is what classifier-free
guidance compares against. The network is told ``t`` and ``d`` and knows nothing about the
objective that trains it.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import nn

from shortcut_policy.models.embeddings import TimeStepEmbedding


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x: (B, N, D)`` scaled and shifted per sample by ``(B, D)`` vectors."""
    return x * (1 + scale[:, None]) + shift[:, None]


def sincos_position_embedding(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2D sin-cos embeddings ``(rows * cols, dim)``: half the channels per axis."""
    if dim % 4:
        raise ValueError(f"hidden size must be a multiple of 4 for 2D sin-cos, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    parts = []
    for axis in (rows.reshape(-1), cols.reshape(-1)):
        angles = axis[:, None] * omega[None]
        parts += [np.sin(angles), np.cos(angles)]
    return torch.from_numpy(np.concatenate(parts, axis=1)).float()


class DiTBlock(nn.Module):
    """Self-attention and MLP, each pre-normed, modulated and gated by the conditioning."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden)
        )
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None] * self.attn(h, h, h, need_weights=False)[0]
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Modulated norm and a projection of every token back to its ``p * p * C`` pixels."""

    def __init__(self, hidden: int, patch: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * channels)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaln(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """``forward(x, t, d, labels)``: ``(B, C, H, W)``, ``(B,)``, ``(B,)``, ``(B,)`` int64.

    Args:
        image_size: ``H = W`` in pixels; must be divisible by ``patch_size``.
        channels: ``C``.
        num_classes: labels ``0 .. num_classes - 1``; ``num_classes`` is the null label.
        patch_size, hidden_size, depth, num_heads, mlp_ratio: the transformer's shape
            (DiT-B/2: 2, 768, 12, 12, 4).
        step_embedding: how ``d`` is embedded, ``"level"`` or ``"length"`` (embeddings.py).
        time_scale: ``t`` (and a ``"length"`` ``d``) is multiplied by this before its sinusoids.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        num_classes: int,
        patch_size: int = 2,
        hidden_size: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        step_embedding: str = "level",
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"image size {image_size} is not divisible by patch_size {patch_size}; "
                "pick a patch size that divides it"
            )
        self.image_size, self.channels, self.patch = image_size, channels, patch_size
        self.num_classes = num_classes
        self.grid = image_size // patch_size
        self.patchify = nn.Conv2d(channels, hidden_size, patch_size, stride=patch_size)
        self.register_buffer(
            "pos_embed", sincos_position_embedding(hidden_size, (self.grid, self.grid))
        )
        self.time = TimeStepEmbedding(
            hidden_size // 2, time_scale=time_scale, step_embedding=step_embedding
        )
        self.time_proj = nn.Linear(self.time.out_dim, hidden_size)
        self.label_embed = nn.Embedding(num_classes + 1, hidden_size)
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.final = FinalLayer(hidden_size, patch_size, channels)
        self._zero_init()

    def _zero_init(self) -> None:
        """adaLN-Zero: modulation and output layers start at zero (output 0, blocks identity)."""
        nn.init.normal_(self.label_embed.weight, std=0.02)
        for layer in [block.adaln[-1] for block in self.blocks] + [
            self.final.adaln[-1],
            self.final.linear,
        ]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def null_label(self) -> int:
        return self.num_classes

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        self.check_inputs(x, labels)
        tokens = rearrange(self.patchify(x), "b c h w -> b (h w) c") + self.pos_embed
        c = self.time_proj(self.time(t, d)) + self.label_embed(labels)
        for block in self.blocks:
            tokens = block(tokens, c)
        out = self.final(tokens, c)
        return rearrange(
            out,
            "b (h w) (p q c) -> b c (h p) (w q)",
            h=self.grid,
            p=self.patch,
            q=self.patch,
        )

    def check_inputs(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"DiT expects images (B, {expected}), got {tuple(x.shape)}")
        if labels.dtype != torch.long or labels.shape != x.shape[:1]:
            raise ValueError(f"labels must be int64 of shape ({x.shape[0]},), got {labels.dtype}")
        # The range is read on the host only where that is free: on a GPU it would block every
        # forward pass, and an out-of-range label there fails in the embedding lookup anyway.
        on_host = labels.device.type == "cpu"
        if on_host and labels.numel() and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(
                f"class label out of range: got {labels.min().item()}..{labels.max().item()}, "
                f"expected 0..{self.num_classes - 1} (or {self.num_classes}, the null label)"
            )
