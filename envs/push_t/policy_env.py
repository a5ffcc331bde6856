"""Push-T as a policy sees it: observations named and shaped like the demonstration store."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.push_t.env import PushTEnv


class StoreKeyObservation(gym.ObservationWrapper):
    """``{"state": (5,), "keypoint": (8, 2)}`` float32, the keys of ``data/`` in the store."""

    def __init__(self, env: PushTEnv) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Dict(
            {
                "state": env.observation_space,
                "keypoint": gym.spaces.Box(0.0, 512.0, shape=(8, 2), dtype=np.float32),
            }
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        push_t: PushTEnv = self.env.unwrapped
        return {
            "state": np.asarray(observation, dtype=np.float32),
            "keypoint": np.asarray(push_t.keypoints, dtype=np.float32),
        }


class StoreKeyPixels(gym.ObservationWrapper):
    """``{"img": (96, 96, 3) uint8, "agent_pos": (2,) float32}``, the keys of the image store."""

    def __init__(self, env: PushTEnv) -> None:
        super().__init__(env)
        spaces = env.observation_space.spaces
        self.observation_space = gym.spaces.Dict(
            {"img": spaces["image"], "agent_pos": spaces["agent_pos"]}
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"img": observation["image"], "agent_pos": observation["agent_pos"]}


def make_policy_env(max_steps: int = 300, obs_mode: str = "state") -> gym.Env:
    """A Push-T env for rollouts; ``info`` carries ``is_success`` and the running ``score``.

    ``obs_mode``: ``state`` (keypoints + state vector) or ``pixels`` (camera frame + pusher).
    """
    if obs_mode == "pixels":
        return StoreKeyPixels(PushTEnv(obs_mode="pixels", max_steps=max_steps))
    if obs_mode != "state":
        raise ValueError(f"push_t env obs_mode must be 'state' or 'pixels', not {obs_mode!r}")
    return StoreKeyObservation(PushTEnv(obs_mode="state", max_steps=max_steps))
