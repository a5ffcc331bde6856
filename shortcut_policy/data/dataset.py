"""Training samples from a replay buffer: observation history and action chunk per window.

| name             | meaning                                                   | Push-T  |
|------------------|-----------------------------------------------------------|---------|
| ``horizon``      | actions generated per network call (the chunk length)     | 16      |
| ``n_obs_steps``  | observation frames the policy conditions on               | 2       |
| ``n_action_steps``| actions of the chunk executed before re-planning         | 8       |

A sample at window start ``s`` holds ``obs[k]`` for steps ``s .. s + n_obs_steps - 1`` and
``action`` for steps ``s .. s + horizon - 1``: the chunk starts at the oldest observation, as in
Diffusion Policy, and the policy executes actions ``n_obs_steps - 1 ..`` of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer
from shortcut_policy.data.windows import read_window, sequence_indices


def split_episodes(
    n_episodes: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random episode split ``(train, val)``; at least one training episode is kept."""
    order = np.random.default_rng(seed).permutation(n_episodes)
    n_val = min(int(round(n_episodes * val_fraction)), n_episodes - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class SequenceDataset(Dataset):
    """Windows of a replay buffer as ``{"obs": {key: (n_obs_steps, ...)}, "action": (H, Da)}``.

    Values are raw (data units, float32); the model normalizes them, so the same statistics
    serve training and deployment.
    """

    def __init__(
        self,
        buffer: ReplayBuffer,
        obs_keys: Sequence[str],
        action_key: str,
        horizon: int,
        n_obs_steps: int,
        n_action_steps: int,
        episodes: np.ndarray | None = None,
    ) -> None:
        longest = int(buffer.episode_lengths.max())
        if horizon > longest:
            raise DatasetError(
                f"horizon {horizon} is longer than every episode (longest {longest} steps); "
                "lower the horizon or use longer episodes"
            )
        self.buffer = buffer
        self.obs_keys = list(obs_keys)
        self.action_key = action_key
        self.horizon = horizon
        self.n_obs_steps = n_obs_steps
        self.indices = sequence_indices(
            buffer.episode_ends, horizon, n_obs_steps - 1, n_action_steps - 1, episodes
        )
        self.lengths = {key: n_obs_steps for key in self.obs_keys}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        keys = [*self.obs_keys, self.action_key]
        window = read_window(
            self.buffer.data, self.indices[index], self.horizon, keys, self.lengths
        )
        obs = {key: torch.from_numpy(_as_float(window[key])) for key in self.obs_keys}
        return {"obs": obs, "action": torch.from_numpy(_as_float(window[self.action_key]))}

    def episode_arrays(self, keys: Sequence[str], episodes: np.ndarray) -> dict[str, np.ndarray]:
        """Concatenated raw arrays of the given episodes (for fitting the normalizer)."""
        parts = [self.buffer.episode(int(ep), keys) for ep in episodes]
        return {key: np.concatenate([part[key] for part in parts]) for key in keys}


def _as_float(value: np.ndarray) -> np.ndarray:
    return value if value.dtype == np.uint8 else value.astype(np.float32, copy=False)
