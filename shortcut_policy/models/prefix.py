"""A chunk's committed prefix, given to the network: training-time prefix conditioning.

When a chunk is computed while the previous one runs, its first actions are already decided:
the past ones were executed, and those the robot will execute before the new chunk takes over
are committed. A network trained with ``prefix_max > 0`` is told them: in a share of training
rows the first ``k`` actions are clean (data, not noise), ``k`` drawn per row from
``0 .. prefix_max`` with linearly decreasing probability (``k = 0``, no prefix, is the most
likely, so the policy still acts with none). At inference the committed actions are written in;
sampling costs no extra pass.

How the network is told, without any objective knowing: the given positions ride along in the
conditioning, ``cond = [features | mask (H) | values (H * Da)]``, which every objective already
passes through row by row. The network (:class:`GivenPrefix`) pins its input to ``values`` where
``mask`` is set, adds ``mask`` as an input channel, and outputs zero there (no gradient). The
trainer also passes every objective the free positions
(:meth:`~shortcut_policy.models.policy_net.PolicyNetwork.free_positions`), so a row's error
counts only the actions it predicts: MeanFlow's adaptive weight ``1 / error`` then sees the
same kind of error in rows with and without a prefix.
"""

from __future__ import annotations

import torch


def given_lengths(batch: int, prefix_max: int, device: torch.device) -> torch.Tensor:
    """``k`` per row, ``(B,)`` integers in ``[0, prefix_max]``, ``P(k)`` proportional to
    ``prefix_max + 1 - k``."""
    weights = torch.arange(prefix_max + 1, 0, -1, dtype=torch.float32, device=device)
    return torch.multinomial(weights, batch, replacement=True)


def prefix_mask(lengths: torch.Tensor, horizon: int) -> torch.Tensor:
    """``(B, H)`` bool: position ``i`` is given when ``i < lengths[b]``."""
    return torch.arange(horizon, device=lengths.device) < lengths[:, None]


class GivenPrefix:
    """Packs and unpacks the given prefix in the conditioning vector of a ``(H, Da)`` chunk."""

    def __init__(self, horizon: int, action_dim: int) -> None:
        self.horizon, self.action_dim = horizon, action_dim
        self.width = horizon * (1 + action_dim)  # columns appended to the features

    def pack(
        self, features: torch.Tensor, mask: torch.Tensor | None, values: torch.Tensor | None
    ) -> torch.Tensor:
        """``[features | mask | values * mask]``; ``mask`` None: nothing given."""
        batch = features.shape[0]
        if mask is None:
            return torch.cat([features, features.new_zeros(batch, self.width)], dim=-1)
        kept = values * mask[..., None]
        return torch.cat([features, mask.to(features.dtype), kept.flatten(1)], dim=-1)

    def unpack(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features, mask (B, H) bool, values (B, H, Da))`` from a packed ``cond``."""
        features, mask, values = cond.split(
            [cond.shape[-1] - self.width, self.horizon, self.horizon * self.action_dim], dim=-1
        )
        values = values.reshape(-1, self.horizon, self.action_dim)
        return features, mask > 0.5, values

    def head_input(self, x: torch.Tensor, mask: torch.Tensor, values: torch.Tensor):
        """``x`` pinned to ``values`` where given, with the mask as one more channel."""
        pinned = torch.where(mask[..., None], values.to(x.dtype), x)
        return torch.cat([pinned, mask[..., None].to(x.dtype)], dim=-1)
