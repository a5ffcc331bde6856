"""DDPM with epsilon prediction: Diffusion Policy's recipe, kept as the baseline.

Training: ``x_k = sqrt(abar_k) x1 + sqrt(1 - abar_k) eps`` with ``k`` uniform in
``0 .. train_steps - 1`` and a squared-cosine ``abar`` schedule; the network predicts ``eps``.
Sampling with ``steps == train_steps`` runs the stochastic DDPM ancestral sampler ("fixed small"
variance); any smaller count runs deterministic DDIM (eta = 0) on "trailing" timesteps, which
always start from the noisiest timestep (the "leading" spacing of older code starts 1-step DDIM
at k = 0 and returns the noise unchanged, an unfair baseline).

The network sees the repo's time convention: ``t = 1 - (k + 1) / train_steps`` (t = 0 is pure
noise) and a constant step size ``d = 1 / train_steps``; it knows nothing about DDPM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from shortcut_policy.objectives.errors import row_errors
from shortcut_policy.objectives.sampling import VelocityNet, expand_like, step_budget


def squared_cosine_alphas_cumprod(train_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """``abar_k`` for ``k = 0 .. train_steps - 1`` (Nichol & Dhariwal's cosine schedule)."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / train_steps) / alpha_bar(i / train_steps), max_beta)
        for i in range(train_steps)
    ]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), dim=0)


def trailing_timesteps(train_steps: int, steps: int) -> list[int]:
    """``steps`` timesteps from ``train_steps - 1`` downwards, evenly spaced, ending near 0."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"DDPM/DDIM steps must be in [1, {train_steps}], got {steps}")
    grid = np.round(train_steps - np.arange(steps) * train_steps / steps).astype(int) - 1
    return [int(k) for k in grid]


@dataclass
class DDPM:
    """Epsilon-prediction diffusion with a squared-cosine schedule.

    Attributes:
        train_steps: number of diffusion timesteps (100 in Diffusion Policy).
        clip_sample: clip the predicted clean sample to ``±clip_range`` while sampling.
        default_steps: sampling budget when a caller gives none (= train_steps: DDPM).
    """

    train_steps: int = 100
    clip_sample: bool = True
    clip_range: float = 1.0
    default_steps: int = 100
    name: str = "ddpm"
    alphas_cumprod: torch.Tensor = field(init=False, repr=False, compare=False)

    teacher_decay = 0.0  # no teacher (the objective contract)

    def __post_init__(self) -> None:
        self.alphas_cumprod = squared_cosine_alphas_cumprod(self.train_steps)

    @property
    def finest_d(self) -> float:
        """The step size the network is always told, ``1 / train_steps``."""
        return 1.0 / self.train_steps

    def teacher_rows(self, batch: int) -> int:
        return 0

    def network_time(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t, d)`` given to the network for integer timesteps ``k`` (shape ``(B,)``)."""
        t = 1.0 - (k.to(torch.float32) + 1.0) / self.train_steps
        return t, torch.full_like(t, 1.0 / self.train_steps)

    def _abar(self, k: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        if self.alphas_cumprod.device != like.device:  # moved once, not copied every pass
            self.alphas_cumprod = self.alphas_cumprod.to(like.device)
        return self.alphas_cumprod[k].to(like.dtype)

    def budget(self, steps: object = None) -> int:
        """``steps`` checked (an integer in ``[1, train_steps]``; None: ``default_steps``)."""
        return step_budget(steps, self.default_steps, self.train_steps, "DDPM/DDIM")

    def loss(
        self,
        net: VelocityNet,
        x1: torch.Tensor,
        cond: object = None,
        teacher: VelocityNet | None = None,
        teacher_cond: object = None,
        free: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean squared error of the predicted noise (over ``free`` positions, see
        :func:`row_errors`); ``teacher`` is unused."""
        k = torch.randint(0, self.train_steps, (x1.shape[0],), device=x1.device)
        eps = torch.randn_like(x1)
        abar = expand_like(self._abar(k, x1), x1)
        x_k = abar.sqrt() * x1 + (1 - abar).sqrt() * eps
        t, d = self.network_time(k)
        loss = row_errors(net(x_k, t.to(x1.dtype), d.to(x1.dtype), cond), eps, free).mean()
        return loss, {"loss": loss.detach(), "loss_eps": loss.detach()}

    def _predict(self, net: VelocityNet, x: torch.Tensor, k: int, cond: object):
        """``(eps, x0)`` predicted at timestep ``k``; ``x0`` clipped when configured."""
        k_vec = torch.full((x.shape[0],), k, device=x.device, dtype=torch.long)
        t, d = self.network_time(k_vec)
        eps = net(x, t.to(x.dtype), d.to(x.dtype), cond)
        abar = self._abar(k, x)
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_range, self.clip_range)
        return eps, x0

    @torch.no_grad()
    def sample(
        self,
        net: VelocityNet,
        noise: torch.Tensor,
        cond: object = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        start: object = None,
    ) -> torch.Tensor:
        """DDPM (``steps == train_steps``) or DDIM (fewer) from ``noise``; one pass per step.

        ``generator`` drives the ancestral sampler's fresh noise (DDIM uses none). There is no
        warm ``start`` (the flow-type objectives have one); passing one raises.
        """
        if start is not None:
            raise ValueError("DDPM/DDIM has no warm start (join='warm'); use join='none'")
        steps = self.budget(steps)
        timesteps = trailing_timesteps(self.train_steps, steps)
        x = noise
        for i, k in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            if steps == self.train_steps:
                x = self._ddpm_step(net, x, k, cond, generator)
            else:
                x = self._ddim_step(net, x, k, prev, cond)
        return x

    def _ddim_step(self, net, x, k: int, prev: int, cond) -> torch.Tensor:
        eps, x0 = self._predict(net, x, k, cond)
        abar_prev = self._abar(prev, x) if prev >= 0 else torch.ones((), dtype=x.dtype)
        return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps

    def _ddpm_step(self, net, x, k: int, cond, generator=None) -> torch.Tensor:
        _, x0 = self._predict(net, x, k, cond)
        abar = self._abar(k, x)
        abar_prev = self._abar(k - 1, x) if k > 0 else torch.ones((), dtype=x.dtype)
        beta = 1 - abar / abar_prev
        mean = (abar_prev.sqrt() * beta / (1 - abar)) * x0
        mean = mean + ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)) * x
        if k == 0:
            return mean
        variance = ((1 - abar_prev) / (1 - abar) * beta).clamp(min=1e-20)
        fresh = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + variance.sqrt() * fresh
