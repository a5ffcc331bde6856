"""The network a policy trains: normalizer + observation encoder + conditional action head.

``encode`` turns raw observations into the conditioning vector; ``forward`` is the head's
``net(x, t, d, cond)`` signature, so any objective can train it without knowing it is a policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.models.obs_encoder import ObservationEncoder
from shortcut_policy.models.unet1d import ConditionalUnet1D


class PolicyNetwork(nn.Module):
    """Everything a policy's weights hold.

    Args:
        spec: data description ``{"obs_shapes": {key: shape}, "obs_types": {key: type},
            "action_dim", "horizon", "n_obs_steps", "action_key"}`` (plain data, saved in
            checkpoints; see :mod:`shortcut_policy.data.obs_space`).
        head: model config fields for :class:`ConditionalUnet1D` (``down_dims`` ...) and
            ``vision`` for the camera encoders (``models.vision.VisionConfig``).
        normalizer: fitted statistics for every low-dimensional observation key and ``"action"``.
    """

    # The conditioning comes from the weights (the observation encoder), so an EMA teacher
    # encodes its rows itself.
    cond_from_weights = True

    def __init__(
        self, spec: Mapping[str, Any], head: Mapping[str, Any], normalizer: RangeNormalizer
    ):
        super().__init__()
        self.spec = dict(spec)
        self.normalizer = normalizer
        head = dict(head)
        self.obs_encoder = ObservationEncoder(spec, head.pop("vision", None))
        self.head = ConditionalUnet1D(
            action_dim=spec["action_dim"], cond_dim=self.obs_encoder.out_dim, **head
        )

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw observations ``{key: (B, n_obs_steps, *shape)}`` -> conditioning ``(B, F)``.

        Vectors are normalized here; camera frames (uint8 or float in [0, 1]) go to the encoder
        as they are.
        """
        inputs = dict(obs)
        for key in self.obs_encoder.low_dim_keys:
            inputs[key] = self.normalizer.normalize(key, obs[key])
        return self.obs_encoder(inputs)

    def augment(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch with random crops of its camera frames (training only; see the encoder)."""
        if not self.training or not self.obs_encoder.rgb_keys:
            return dict(batch)
        return {**batch, "obs": self.obs_encoder.augment(batch["obs"])}

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pair ``(x1, cond)``: normalized actions ``(B, H, Da)`` and conditioning."""
        return self.normalizer.normalize("action", batch["action"]), self.encode(batch["obs"])

    def act(
        self,
        obs: Mapping[str, torch.Tensor],
        objective: Any,
        steps: int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Raw observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, horizon, Da)``
        in data units: encode, ``steps`` passes of ``objective.sample`` from ``noise`` (standard
        normal in normalized units; drawn from ``generator`` when None), unnormalize. The one
        observation-to-action path: the policy, rollouts, training evaluation, CUDA graphs and
        the ONNX export all call it."""
        cond = self.encode(obs)
        if noise is None:
            shape = self.sample_shape(cond.shape[0])
            noise = torch.randn(shape, generator=generator, device=cond.device)
        chunk = objective.sample(self, noise, cond, steps, generator)
        return self.normalizer.unnormalize("action", chunk)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        return self.head(x, t, d, cond)

    def sample_shape(self, batch: int) -> tuple[int, int, int]:
        """Shape of one batch of normalized action chunks: ``(B, horizon, action_dim)``."""
        return (batch, self.spec["horizon"], self.spec["action_dim"])
