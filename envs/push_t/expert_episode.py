"""Run the scripted expert for one episode and return arrays in Diffusion Policy's zarr layout.

Per step i the arrays hold the observation *before* the action and the action taken at step i,
like ``data/*`` in Diffusion Policy's ``pusht_cchi_v7_replay.zarr``:

* ``state`` (T, 5) float32: agent x, y, block x, y, block angle in [0, 2 pi)
* ``keypoint`` (T, 8, 2) float32: gym-pusht's 8 block keypoints (Diffusion Policy's file has 9
  keypoints from its own env; ours are gym-pusht's bar and stem corners, see ``geometry``)
* ``action`` (T, 2) float32: pusher target in px
* ``img`` (T, 96, 96, 3) uint8: only when ``render=True``
* ``coverage`` (T,) float32: coverage after the action of step i
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.push_t.env import PushTEnv
from envs.push_t.expert import PushTExpert
from envs.push_t.scoring import episode_score, episode_success


def run_expert_episode(
    seed: int,
    obs_mode: str = "state",
    render: bool = False,
    max_steps: int = 300,
    steps_after_success: int = 5,
    expert_seed: int | None = None,
    frames: bool = False,
) -> dict[str, Any]:
    """Roll out ``PushTExpert`` on the env started from ``seed``.

    Args:
        seed: env reset seed (gym-pusht's random start state).
        obs_mode: env observation mode; the returned arrays do not depend on it.
        render: also record the 96 x 96 ``img`` observation per step.
        max_steps: episode step limit.
        steps_after_success: steps still recorded after the first successful step (the pusher
            holds still), so demonstrations show the task settling; the episode then ends.
        expert_seed: seed of the expert's generator; defaults to ``seed``.
        frames: also return ``frames``, full-size RGB renders (for videos), one per step.

    Returns:
        dict with arrays ``state``, ``keypoint``, ``action``, ``coverage`` (and ``img``) of length
        ``length``, and scalars ``success`` (bool), ``score`` (float), ``seed`` (int),
        ``length`` (int).
    """
    env = PushTEnv(obs_mode="pixels" if render else obs_mode, max_steps=max_steps)
    expert = PushTExpert(seed if expert_seed is None else expert_seed)
    obs, _ = env.reset(seed=seed)
    rec: dict[str, list] = {
        "state": [],
        "keypoint": [],
        "action": [],
        "coverage": [],
        "img": [],
        "frames": [],
    }
    first_success: int | None = None
    for step in range(max_steps):
        rec["state"].append(env.get_state())
        rec["keypoint"].append(env.keypoints)
        if render:
            rec["img"].append(obs["image"])
        if frames:
            rec["frames"].append(env.render())
        action = expert.act(env)
        rec["action"].append(action)
        obs, _, terminated, truncated, info = env.step(action)
        rec["coverage"].append(info["coverage"])
        if terminated and first_success is None:
            first_success = step
        if truncated or (first_success is not None and step - first_success >= steps_after_success):
            break
    env.close()
    out: dict[str, Any] = {
        "state": np.asarray(rec["state"], dtype=np.float32),
        "keypoint": np.asarray(rec["keypoint"], dtype=np.float32),
        "action": np.asarray(rec["action"], dtype=np.float32),
        "coverage": np.asarray(rec["coverage"], dtype=np.float32),
    }
    if render:
        out["img"] = np.asarray(rec["img"], dtype=np.uint8)
    if frames:
        out["frames"] = rec["frames"]
    out["success"] = episode_success(rec["coverage"])
    out["score"] = episode_score(rec["coverage"])
    out["seed"] = int(seed)
    out["length"] = len(rec["action"])
    return out
