"""Sampling action chunks from a policy network with any objective (shared by eval and policy)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from shortcut_policy.models.policy_net import PolicyNetwork


@torch.no_grad()
def sample_action_chunk(
    network: PolicyNetwork,
    objective,
    obs: Mapping[str, torch.Tensor],
    steps: int | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raw observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, H, Da)`` in data units.

    ``steps`` is the number of network passes (the objective's default when None). ``noise``
    ``(B, H, Da)``, standard normal in normalized action units, is the starting sample; drawn
    from ``generator`` when None.
    """
    cond = network.encode(obs)
    if noise is None:
        shape = network.sample_shape(cond.shape[0])
        noise = torch.randn(shape, generator=generator, device=cond.device)
    chunk = objective.sample(network, noise, cond, steps, generator)
    return network.normalizer.unnormalize("action", chunk)
