"""Per-dimension min/max normalization to [-1, 1], saved with the model (never refitted at load)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


class RangeNormalizer(nn.Module):
    """Maps each key's values to [-1, 1] per trailing dimension; statistics are buffers.

    Keys are fitted from arrays ``(N, ...)``: min and max are taken over the first axis, so an
    array ``(N, 9, 2)`` gets ``(9, 2)`` statistics. Dimensions with (almost) no range are
    centred instead of scaled, so a constant input maps to 0 rather than to NaN.
    """

    def __init__(self, stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        super().__init__()
        self.keys: list[str] = []
        for key, (low, high) in (stats or {}).items():
            self.add_key(key, torch.as_tensor(low), torch.as_tensor(high))

    @classmethod
    def fit(cls, arrays: Mapping[str, np.ndarray], min_range: float = 1e-4) -> RangeNormalizer:
        stats = {}
        for key, value in arrays.items():
            low = value.min(axis=0).astype(np.float32)
            high = value.max(axis=0).astype(np.float32)
            flat = (high - low) < min_range
            low, high = np.where(flat, low - 1, low), np.where(flat, high + 1, high)
            stats[key] = (low, high)
        return cls(stats)

    @classmethod
    def empty_like(cls, shapes: Mapping[str, tuple[int, ...]]) -> RangeNormalizer:
        """Placeholder with the right buffer shapes, to be filled by ``load_state_dict``."""
        return cls({key: (np.zeros(shape), np.ones(shape)) for key, shape in shapes.items()})

    def add_key(self, key: str, low: torch.Tensor, high: torch.Tensor) -> None:
        self.register_buffer(f"{key}_low", low.float())
        self.register_buffer(f"{key}_high", high.float())
        self.keys.append(key)

    def stats(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` of ``key``: what maps to -1 and 1."""
        if key not in self.keys:
            raise KeyError(f"normalizer has no statistics for {key!r}; it knows {self.keys}")
        return getattr(self, f"{key}_low"), getattr(self, f"{key}_high")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """``x: (..., *stat_shape)`` in data units -> [-1, 1]."""
        low, high = self.stats(key)
        return (x - low) / (high - low) * 2 - 1

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        low, high = self.stats(key)
        return (x + 1) / 2 * (high - low) + low
