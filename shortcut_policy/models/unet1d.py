"""ConditionalUnet1D: a temporal U-Net over action chunks with FiLM conditioning.

Input ``x: (B, T, Da)`` (T = horizon, Da = action dim) is treated as a 1D signal with Da channels.
Every residual block receives FiLM (per-channel scale and bias) computed from one conditioning
vector ``[emb(t), emb(d), obs_features]``. The network is told ``t`` and ``d`` and knows nothing
about which objective trains it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from shortcut_policy.models.embeddings import TimeStepEmbedding


class ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length preserved."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )


class FiLMResBlock(nn.Module):
    """Two conv blocks; the first's output is modulated by ``scale * h + bias`` from the cond."""

    def __init__(
        self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.block1 = ConvBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = ConvBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x: (B, C_in, T)``, ``cond: (B, cond_dim)`` -> ``(B, C_out, T)``."""
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block1(x) * scale + bias
        return self.block2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Temporal U-Net predicting a velocity (or noise) with the shape of its input.

    Args:
        action_dim: Da, channels of the action chunk.
        cond_dim: size of the observation feature vector (0 for unconditional use).
        down_dims: channel widths per resolution; the length halves between levels.
        kernel_size: temporal convolution width.
        embed_dim: size of each of the ``t`` and ``d`` embeddings.
        n_groups: GroupNorm groups.
        step_embedding: how ``d`` is embedded, ``"level"`` or ``"length"`` (embeddings.py).
        time_scale: ``t`` (and a ``"length"`` ``d``) is multiplied by this before its sinusoids.
        extra_channels: input channels beyond the actions (a prefix mask); the output stays
            ``action_dim`` wide.
    """

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: Sequence[int] = (64, 128, 256),
        kernel_size: int = 5,
        embed_dim: int = 128,
        n_groups: int = 8,
        step_embedding: str = "level",
        time_scale: float = 1000.0,
        extra_channels: int = 0,
    ) -> None:
        super().__init__()
        self.embed = TimeStepEmbedding(
            embed_dim, time_scale=time_scale, step_embedding=step_embedding
        )
        film_dim = self.embed.out_dim + cond_dim
        self.cond_dim = cond_dim
        self.n_down = len(down_dims) - 1
        widths = [action_dim + extra_channels, *down_dims]

        def res(c_in: int, c_out: int) -> FiLMResBlock:
            return FiLMResBlock(c_in, c_out, film_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(down_dims) - 1
            sample = nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([res(c_in, c_out), res(c_out, c_out), sample]))
        self.mid = nn.ModuleList([res(down_dims[-1], down_dims[-1]) for _ in range(2)])
        self.up = nn.ModuleList()
        for c_out, c_in in reversed(list(zip(down_dims[:-1], down_dims[1:]))):
            upsample = nn.ConvTranspose1d(c_out, c_out, 4, stride=2, padding=1)
            self.up.append(nn.ModuleList([res(2 * c_in, c_out), res(c_out, c_out), upsample]))
        self.head = nn.Sequential(
            ConvBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x: (B, T, Da + extra_channels)``, ``t, d: (B,)``, ``cond: (B, cond_dim)`` ->
        ``(B, T, Da)``.

        ``T`` must be divisible by ``2 ** (len(down_dims) - 1)``.
        """
        if x.shape[1] % (1 << self.n_down):
            raise ValueError(
                f"horizon {x.shape[1]} must be divisible by {1 << self.n_down} "
                f"(2 ** (len(down_dims) - 1)); change the horizon or down_dims"
            )
        film = self.embed(t, d)
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                found = None if cond is None else tuple(cond.shape)
                raise ValueError(f"cond must have shape (B, {self.cond_dim}), got {found}")
            film = torch.cat([film, cond], dim=-1)
        h = rearrange(x, "b t c -> b c t")
        skips = []
        for block1, block2, downsample in self.down:
            h = block2(block1(h, film), film)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, film)
        for block1, block2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(block2(block1(h, film), film))
        return rearrange(self.head(h), "b c t -> b t c")
