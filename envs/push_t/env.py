"""``PushTEnv``: gym-pusht with our observation modes and our scoring (``scoring.py``: success
is coverage above 0.95 at any step within 300 steps; the score is the best ``min(coverage / 0.95,
1)`` of the episode).

Observation modes (all coordinates in pixels of the 512 x 512 workspace, y pointing down):

=============  ===========================================================================
``state``      float32 (5,): agent x, y, block x, y, block angle in [0, 2 pi) (gym-pusht's
               ``state``; block x, y is the body origin, the middle of the bar's top edge).
``keypoints``  float32 (18,): the 8 block keypoints flattened as x0, y0, ..., x7, y7, then the
               agent x, y. The order is gym-pusht's ``get_keypoints`` (bar corners, then stem
               corners), identical to its ``environment_state_agent_pos`` observation.
``pixels``     dict: ``image`` uint8 (96, 96, 3) RGB, ``agent_pos`` float32 (2,).
=============  ===========================================================================

Actions are absolute pusher targets (2,) in [0, 512]. One step is 0.1 s of simulated time.

``step`` returns the gymnasium 5-tuple. ``terminated`` is True once the coverage exceeds 0.95 (as
in gym-pusht); stepping on after that is allowed (demonstrations record a few extra steps).
``truncated`` is True at ``max_steps``. ``info`` holds ``coverage``, ``is_success`` and the
running ``score`` (max over the steps so far of ``min(coverage / 0.95, 1)``; the reset state is
not counted).
"""

from __future__ import annotations

from typing import Any

import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.push_t import sim
from envs.push_t.scoring import SUCCESS_THRESHOLD, step_score

OBS_MODES = ("state", "keypoints", "pixels")
N_KEYPOINTS = 8
_GYM_OBS_TYPE = {"state": "state", "keypoints": "environment_state_agent_pos", "pixels": "pixels"}


def make_observation_space(obs_mode: str, image_size: int = 96) -> spaces.Space:
    """The observation space of ``PushTEnv`` for ``obs_mode``."""
    if obs_mode == "state":
        high = np.array([512, 512, 512, 512, 2 * np.pi], dtype=np.float32)
        return spaces.Box(np.zeros(5, np.float32), high, dtype=np.float32)
    if obs_mode == "keypoints":
        return spaces.Box(0.0, 512.0, shape=(2 * N_KEYPOINTS + 2,), dtype=np.float32)
    if obs_mode == "pixels":
        return spaces.Dict(
            {
                "image": spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8),
                "agent_pos": spaces.Box(0.0, 512.0, shape=(2,), dtype=np.float32),
            }
        )
    raise ValueError(f"unknown obs_mode {obs_mode!r}; valid modes: {', '.join(OBS_MODES)}")


class PushTEnv(gym.Env):
    """Push-T with ``obs_mode`` in {"state", "keypoints", "pixels"} and a ``max_steps`` limit.

    Args:
        obs_mode: observation mode (see the module docstring).
        max_steps: steps after which ``truncated`` is True (300 for every Push-T figure).
        render_size: side in pixels of the frames returned by ``render`` (a multiple of 16 suits
            video encoders).
        image_size: side of the ``pixels`` observation image.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_mode: str = "state",
        max_steps: int = 300,
        render_size: int = 384,
        image_size: int = 96,
    ) -> None:
        self.observation_space = make_observation_space(obs_mode, image_size)
        self.action_space = spaces.Box(0.0, 512.0, shape=(2,), dtype=np.float32)
        self.obs_mode = obs_mode
        self.max_steps = int(max_steps)
        self.render_mode = "rgb_array"
        # The checker and time limit are ours to apply; step the unwrapped env directly.
        self._gym = gym.make(
            "gym_pusht/PushT-v0",
            obs_type=_GYM_OBS_TYPE[obs_mode],
            render_mode="rgb_array",
            observation_width=image_size,
            observation_height=image_size,
            visualization_width=render_size,
            visualization_height=render_size,
            disable_env_checker=True,
        )
        self._raw = self._gym.unwrapped
        self._steps = 0
        self._score = 0.0

    @property
    def physics(self):
        """The underlying gym-pusht ``PushTEnv`` (pymunk bodies ``agent`` and ``block``)."""
        return self._raw

    @property
    def elapsed_steps(self) -> int:
        """Steps taken since the last reset."""
        return self._steps

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset to gym-pusht's random start for ``seed``; ``options={"state": s}`` sets state s.

        ``options["state"]`` (5,) uses ``set_state`` (exact); gym-pusht's own
        ``options["reset_to_state"]`` is passed through with its legacy (inexact) semantics.
        """
        super().reset(seed=seed)
        raw_obs, _ = self._raw.reset(seed=seed, options=options)
        if options is not None and options.get("state") is not None:
            self.set_state(options["state"])
            raw_obs = None  # stale: observe again
        self._steps = 0
        self._score = 0.0
        info = {"coverage": self.coverage(), "is_success": False, "score": 0.0}
        return self._observe(raw_obs), info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Move the pusher target to ``action`` (2,) px for 0.1 s; see the module docstring."""
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), 0.0, 512.0)
        raw_obs, reward, _, _, raw_info = self._raw.step(action)
        self._steps += 1
        coverage = float(raw_info["coverage"])
        self._score = max(self._score, step_score(coverage))
        success = coverage > SUCCESS_THRESHOLD
        info = {
            "coverage": coverage,
            "is_success": success,
            "score": self._score,
            "block_pose": raw_info["block_pose"],
            "n_contacts": raw_info["n_contacts"],
        }
        truncated = self._steps >= self.max_steps
        return self._observe(raw_obs), float(reward), success, truncated, info

    def render(self) -> np.ndarray:
        """RGB frame (render_size, render_size, 3) uint8 with the goal, block, pusher and a cross
        at the last action."""
        return self._raw.render()

    def close(self) -> None:
        self._gym.close()

    def get_state(self) -> np.ndarray:
        """State (5,) float64: agent x, y, block x, y, block angle wrapped to [0, 2 pi)."""
        a, b = self._raw.agent.position, self._raw.block.position
        return np.array([a[0], a[1], b[0], b[1], self._raw.block.angle % (2 * np.pi)])

    def set_state(self, state: np.ndarray) -> None:
        """Place agent and block exactly at ``state`` (5,), velocities zero, without stepping."""
        sim.restore(self._raw, sim.state_from_vector(state))

    @property
    def keypoints(self) -> np.ndarray:
        """Block keypoints (8, 2) float64 in world px, gym-pusht's order."""
        return self._raw.get_keypoints(self._raw._block_shapes)

    def coverage(self) -> float:
        """Fraction of the goal T's area covered by the block, in [0, 1]."""
        return float(self._raw._get_coverage())

    def observe(self) -> Any:
        """Observation of the current state in ``obs_mode`` (e.g. after ``set_state``)."""
        return self._observe()

    def _observe(self, raw_obs: Any = None) -> Any:
        """Our observation; ``raw_obs`` is gym-pusht's, reused for pixels to avoid a re-render."""
        agent = np.asarray(self._raw.agent.position, dtype=np.float32)
        if self.obs_mode == "state":
            return self.get_state().astype(np.float32)
        if self.obs_mode == "keypoints":
            return np.concatenate([self.keypoints.reshape(-1), agent]).astype(np.float32)
        image = self._raw.get_obs() if raw_obs is None else raw_obs  # gym-pusht's 96 x 96 render
        return {"image": np.ascontiguousarray(image, dtype=np.uint8), "agent_pos": agent}
