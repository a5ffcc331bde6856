import gymnasium as gym
import numpy as np
import pytest

import shortcut_policy  # noqa: F401  (registers the ids)
from shortcut_policy.tasks import register_gym_envs


@pytest.mark.parametrize(
    "obs_mode, keys", [("state", {"keypoint", "state"}), ("pixels", {"img", "agent_pos"})]
)
def test_push_t_is_made_by_its_gym_id(obs_mode, keys):
    env = gym.make("shortcut_policy/PushT-v0", obs_mode=obs_mode, max_steps=5)
    obs, _ = env.reset(seed=0)
    assert set(obs) == keys and env.observation_space.contains(obs)
    for _ in range(5):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and "score" in info
    env.close()


def test_simulator_ids_are_registered_with_their_extra():
    ids = register_gym_envs()
    assert "shortcut_policy/PushT-v0" in ids
    pytest.importorskip("robosuite")
    assert "shortcut_policy/Robosuite-v0" in ids and "shortcut_policy/MetaWorld-v0" in ids
    env = gym.make("shortcut_policy/MetaWorld-v0", task="reach", max_steps=3)
    obs, _ = env.reset(seed=0)
    assert all(np.isfinite(value).all() for value in obs.values())
    env.close()
