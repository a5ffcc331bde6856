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
from shortcut_policy.models.prefix import GivenPrefix, given_lengths, prefix_mask
from shortcut_policy.models.unet1d import ConditionalUnet1D


class PolicyNetwork(nn.Module):
    """Everything a policy's weights hold.

    Args:
        spec: data description ``{"obs_shapes": {key: shape}, "obs_types": {key: type},
            "action_dim", "horizon", "n_obs_steps", "action_key"}`` (plain data, saved in
            checkpoints; see :mod:`shortcut_policy.data.obs_space`).
        head: model config fields for :class:`ConditionalUnet1D` (``down_dims`` ...),
            ``vision`` for the camera encoders (``models.vision.VisionConfig``) and
            ``prefix_max`` (0: off; else the longest committed prefix a training row is given,
            see :mod:`~shortcut_policy.models.prefix`).
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
        self.prefix_max = int(head.pop("prefix_max", 0))
        if not 0 <= self.prefix_max < spec["horizon"]:
            raise ValueError(
                f"model.prefix_max={self.prefix_max} must be in [0, horizon - 1] = "
                f"[0, {spec['horizon'] - 1}]: a row needs free actions to learn from"
            )
        self.given = GivenPrefix(spec["horizon"], spec["action_dim"]) if self.prefix_max else None
        self.head = ConditionalUnet1D(
            action_dim=spec["action_dim"],
            cond_dim=self.obs_encoder.out_dim,
            extra_channels=1 if self.given else 0,
            **head,
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
        """The batch with random crops of its camera frames and, with ``prefix_max``, each
        row's given prefix length ``given_len`` (training only; the teacher sees the same)."""
        batch = dict(batch)
        if not self.training:
            return batch
        if self.obs_encoder.rgb_keys:
            batch["obs"] = self.obs_encoder.augment(batch["obs"])
        if self.given is not None:
            rows = len(batch["action"])
            batch["given_len"] = given_lengths(rows, self.prefix_max, batch["action"].device)
        return batch

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pair ``(x1, cond)``: normalized actions ``(B, H, Da)`` and conditioning
        (with the given prefix packed in, when the network takes one)."""
        x1 = self.normalizer.normalize("action", batch["action"])
        cond = self.encode(batch["obs"])
        if self.given is None:
            return x1, cond
        free = self.free_positions(batch)
        return x1, self.given.pack(cond, None if free is None else ~free, x1)

    def free_positions(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """``(B, H)`` bool, the chunk positions this network predicts (not given): the ones
        that count in the loss; None when nothing is given (every position counts)."""
        lengths = batch.get("given_len") if self.given is not None else None
        return None if lengths is None else ~prefix_mask(lengths, self.given.horizon)

    def act(
        self,
        obs: Mapping[str, torch.Tensor],
        objective: Any,
        steps: int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        given: tuple[torch.Tensor, torch.Tensor] | None = None,
        warm: tuple[float, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Raw observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, horizon, Da)``
        in data units: encode, ``steps`` passes of ``objective.sample`` from ``noise`` (standard
        normal in normalized units; drawn from ``generator`` when None), clamp to the
        demonstrated range ([-1, 1] normalized), unnormalize. The one
        observation-to-action path: the policy, rollouts, training evaluation, CUDA graphs and
        the ONNX export all call it. ``given`` ``(mask (B, H) bool, actions (B, H, Da))`` in
        data units: the committed prefix (a network trained with ``prefix_max`` only); the
        returned chunk holds those actions where ``mask`` is set. ``warm`` ``(t0, guess (B, H,
        Da))`` in data units: start at ``t0`` on the path from the noise to ``guess``."""
        cond = self.encode(obs)
        if given is not None and self.given is None:
            raise ValueError(
                "this network was trained without a prefix (prefix_max = 0): pass given=None, "
                "or retrain with +model.prefix_max=8"
            )
        mask, values = given if given is not None else (None, None)
        if self.given is not None:
            values = None if given is None else self.normalizer.normalize("action", values)
            cond = self.given.pack(cond, mask, values)
        if noise is None:
            shape = self.sample_shape(cond.shape[0])
            noise = torch.randn(shape, generator=generator, device=cond.device)
        if warm is None:
            chunk = objective.sample(self, noise, cond, steps, generator)
        else:
            start = (warm[0], self.normalizer.normalize("action", warm[1]))
            chunk = objective.sample(self, noise, cond, steps, generator, start=start)
        # Never beyond what the demonstrations did, per dimension: far from the data a one-pass
        # sample can land anywhere (MeanFlow gave y = 679 on Push-T's 512-pixel board). NaN and
        # infinity pass through unclamped, so the policy's finiteness check still names them.
        chunk = torch.where(chunk.isfinite(), chunk.clamp(-1.0, 1.0), chunk)
        if mask is not None:
            chunk = torch.where(mask[..., None], values, chunk)
        return self.normalizer.unnormalize("action", chunk)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        if self.given is None:
            return self.head(x, t, d, cond)
        features, mask, values = self.given.unpack(cond)
        out = self.head(self.given.head_input(x, mask, values), t, d, features)
        return out * ~mask[..., None]  # given positions: no output, so no gradient

    def sample_shape(self, batch: int) -> tuple[int, int, int]:
        """Shape of one batch of normalized action chunks: ``(B, horizon, action_dim)``."""
        return (batch, self.spec["horizon"], self.spec["action_dim"])
