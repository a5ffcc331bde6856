"""MetaWorld (v3, MuJoCo) tasks as seeded gymnasium environments with state observations.

Every ``reset(seed=s)`` draws the object and goal positions from the task's own random range
with a generator seeded by ``s`` (as 3D Diffusion Policy does), so demonstrations (seeds 0 and
up) and evaluations (seeds 100000 and up) see disjoint, reproducible scenes. The goal is part of
the observation (MetaWorld's "goal observable" variant): a state policy cannot infer it otherwise.

Observation ``state``: ``(39,)`` float32 = hand xyz (m), gripper opening, object 1 pose (xyz +
quaternion), object 2 pose, the same 18 values one step earlier, goal xyz.
Action: ``(4,)`` float32 in [-1, 1] = hand displacement (scaled by MetaWorld to ~1 cm) and
gripper effort. The episode ends on success (``terminated``) or after ``max_steps``
(``truncated``); ``info`` carries ``is_success`` and ``score`` (1.0 once succeeded, else 0.0).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from shortcut_policy.extras import require

# MetaWorld's MT10 set. In the grouping 3D Diffusion Policy reports by, the first seven are
# "easy", peg-insert-side "medium", push and pick-place "hard".
MT10_TASKS = (
    "reach",
    "button-press-topdown",
    "drawer-close",
    "drawer-open",
    "window-open",
    "window-close",
    "door-open",
    "peg-insert-side",
    "push",
    "pick-place",
)


def known_tasks() -> list[str]:
    """All MetaWorld v3 task names without the ``-v3`` suffix (``push``, ``pick-place`` ...)."""
    env_dict = require("metaworld.env_dict", "MetaWorld", "manipulation")
    return sorted(name.removesuffix("-v3") for name in env_dict.ALL_V3_ENVIRONMENTS)


def check_task(name: str) -> str:
    """The v3 environment name of ``name`` (``push`` or ``push-v3``); lists known names if not."""
    short = name.removesuffix("-v3").replace("_", "-")
    known = known_tasks()
    if short not in known:
        raise ValueError(f"unknown MetaWorld task {name!r}; known tasks: {', '.join(known)}")
    return f"{short}-v3"


class MetaWorldEnv(gym.Env):
    """One MetaWorld task, seeded per episode, with ``{"state": (39,)}`` observations."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self, task: str, max_steps: int = 200, render_size: int = 128, camera: str = "corner"
    ) -> None:
        self.task = check_task(task)
        env_dict = require("metaworld.env_dict", "MetaWorld", "manipulation")
        cls = env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{self.task}-goal-observable"]
        self._env = cls(seed=0, render_mode="rgb_array")
        self._env.camera_name = camera
        self._env.width = self._env.height = render_size
        self.max_steps = int(max_steps)
        # MetaWorld refuses to step past its own limit (500); ours decides when episodes end.
        self._env.max_path_length = max(self._env.max_path_length, self.max_steps)
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float32)}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._steps = 0
        self._succeeded = False
        self.last_raw_obs: np.ndarray | None = None  # float64 obs, as MetaWorld's experts read it

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        base = self._env
        base.seed(int(seed) if seed is not None else int(self.np_random.integers(2**31)))
        base._freeze_rand_vec = False  # draw a new scene from the seeded generator
        base.seeded_rand_vec = True
        raw, _ = base.reset()
        base._freeze_rand_vec = True
        self._steps, self._succeeded = 0, False
        return self._observe(raw), {"is_success": False, "score": 0.0}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(4), -1.0, 1.0)
        raw, reward, _, _, info = self._env.step(action)
        self._steps += 1
        self._succeeded = self._succeeded or bool(info["success"])
        info = {**info, "is_success": self._succeeded, "score": float(self._succeeded)}
        truncated = self._steps >= self.max_steps and not self._succeeded
        return self._observe(raw), float(reward), self._succeeded, truncated, info

    def render(self) -> np.ndarray:
        """RGB frame ``(render_size, render_size, 3)`` uint8 from the chosen camera."""
        return np.ascontiguousarray(self._env.render())

    def close(self) -> None:
        self._env.close()

    def _observe(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        self.last_raw_obs = np.asarray(raw, dtype=np.float64)
        return {"state": self.last_raw_obs.astype(np.float32)}


def make_expert(task: str) -> Any:
    """MetaWorld's scripted policy for ``task``; ``expert.get_action(raw_obs) -> (4,)``."""
    policies = require("metaworld.policies", "MetaWorld's scripted experts", "manipulation")
    name = check_task(task).removesuffix("-v3")
    camel = "".join(part.capitalize() for part in name.split("-"))
    candidates = (f"Sawyer{camel}V3Policy", f"Sawyer{camel.replace('Insert', 'Insertion')}V3Policy")
    for candidate in candidates:
        if hasattr(policies, candidate):
            return getattr(policies, candidate)()
    raise ValueError(f"MetaWorld has no scripted expert for {task!r}")


def make_policy_env(task: str, max_steps: int = 200) -> gym.Env:
    """Rollout env for ``task.env.name: metaworld`` (observation keys match the store)."""
    return MetaWorldEnv(task, max_steps=max_steps)
