"""robosuite (1.5, MuJoCo) Lift, PickPlaceCan and NutAssemblySquare with a Panda arm under
operational-space control.

Observations are named as in robomimic's low-dim datasets (all float32, positions in metres,
quaternions x, y, z, w):

* ``object``: the task's object state, ``(10,)`` on Lift (cube position, quaternion, cube to
  gripper vector), ``(14,)`` on Can and Square (the can's or square nut's position and
  quaternion, object-to-gripper position and quaternion);
* ``robot0_eef_pos`` ``(3,)``, ``robot0_eef_quat`` ``(4,)``, ``robot0_gripper_qpos`` ``(2,)``,
  ``robot0_gripper_qvel`` ``(2,)``, ``robot0_joint_pos`` ``(7,)``, ``robot0_joint_vel`` ``(7,)``.

Action ``(7,)`` in [-1, 1]: OSC_POSE deltas (position x 0.05 m, axis-angle x 0.5 rad, base frame)
and the gripper (-1 open, +1 close), at 20 Hz. ``reset(seed=s)`` places the objects with numpy's
global generator seeded by ``s`` (robosuite's placement samplers draw from it), then restores it.
The episode ends on success (``terminated``) or after ``max_steps`` (``truncated``); ``info``
carries ``is_success`` and ``score`` (1.0 once succeeded).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gymnasium as gym
import numpy as np

from shortcut_policy.extras import require

# our task name -> robosuite environment name
TASKS = {"lift": "Lift", "can": "PickPlaceCan", "square": "NutAssemblySquare"}
OBS_KEYS = (
    "object",
    "robot0_eef_pos",
    "robot0_eef_quat",
    "robot0_gripper_qpos",
    "robot0_gripper_qvel",
    "robot0_joint_pos",
    "robot0_joint_vel",
)
CONTROL_FREQ = 20


def check_task(name: str) -> str:
    """robosuite's environment name for ``name`` (``lift``, ``can`` or ``square``)."""
    if name not in TASKS:
        raise ValueError(f"unknown robosuite task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def env_kwargs(task: str) -> dict[str, Any]:
    """``robosuite.make`` arguments (no cameras, sparse reward, OSC_POSE via the BASIC config)."""
    controllers = require("robosuite.controllers", "robosuite", "manipulation")
    return {
        "env_name": check_task(task),
        "robots": "Panda",
        "controller_configs": controllers.load_composite_controller_config(controller="BASIC"),
        "has_renderer": False,
        "has_offscreen_renderer": False,
        "use_camera_obs": False,
        "use_object_obs": True,
        "reward_shaping": False,
        "control_freq": CONTROL_FREQ,
        "ignore_done": True,
        "hard_reset": False,  # reuse the compiled model between episodes (~2 s saved each)
    }


def make_robosuite(task: str, **overrides: Any):
    """The raw robosuite environment, with robosuite's start-up chatter silenced."""
    suite = require("robosuite", "robosuite", "manipulation")
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
    return suite.make(**{**env_kwargs(task), **overrides})


def env_args_json(task: str) -> str:
    """robomimic's ``env_args`` attribute: env name, robosuite version, type 1, kwargs."""
    suite = require("robosuite", "robosuite", "manipulation")
    kwargs = {k: v for k, v in env_kwargs(task).items() if k != "env_name"}
    return json.dumps(
        {
            "env_name": check_task(task),
            "env_version": suite.__version__,
            "type": 1,
            "env_kwargs": kwargs,
        }
    )


class RobosuiteEnv(gym.Env):
    """Lift, Can or Square as a gymnasium env with robomimic-named dict observations (see above)."""

    metadata = {"render_modes": []}

    def __init__(self, task: str = "lift", max_steps: int = 300) -> None:
        self.task = task
        self.env = make_robosuite(task, horizon=max_steps + 1)
        self.max_steps = int(max_steps)
        obs = self.env.reset()
        self.observation_space = gym.spaces.Dict(
            {
                key: gym.spaces.Box(
                    -np.inf, np.inf, shape=np.shape(self._pick(obs, key)), dtype=np.float32
                )
                for key in OBS_KEYS
            }
        )
        self.action_space = gym.spaces.Box(
            -1.0, 1.0, shape=(self.env.action_dim,), dtype=np.float32
        )
        self._steps, self._succeeded = 0, False
        self.raw_obs: dict[str, np.ndarray] = obs

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        saved = np.random.get_state()
        np.random.seed(int(seed) if seed is not None else int(self.np_random.integers(2**31)))
        try:
            self.raw_obs = self.env.reset()
        finally:
            np.random.set_state(saved)
        self._steps, self._succeeded = 0, False
        return self._observe(self.raw_obs), {"is_success": False, "score": 0.0}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        self.raw_obs, reward, _, _ = self.env.step(action)
        self._steps += 1
        self._succeeded = self._succeeded or bool(self.env._check_success())
        info = {"is_success": self._succeeded, "score": float(self._succeeded)}
        truncated = self._steps >= self.max_steps and not self._succeeded
        return self._observe(self.raw_obs), float(reward), self._succeeded, truncated, info

    def sim_state(self) -> np.ndarray:
        """MuJoCo state ``(1 + nq + nv,)`` (time, qpos, qvel): robomimic's ``states``."""
        return np.asarray(self.env.sim.get_state().flatten(), dtype=np.float64)

    def close(self) -> None:
        self.env.close()

    def _observe(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: self._pick(obs, key) for key in OBS_KEYS}

    @staticmethod
    def _pick(obs: dict[str, np.ndarray], key: str) -> np.ndarray:
        return np.asarray(obs["object-state" if key == "object" else key], dtype=np.float32)


def make_policy_env(task: str = "lift", max_steps: int = 300) -> gym.Env:
    """Rollout env for ``task.env.name: robosuite`` (observation keys match the store)."""
    return RobosuiteEnv(task, max_steps=max_steps)
