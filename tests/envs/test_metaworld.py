"""MetaWorld: the seeded wrapper, the shipped experts, the demo store, configs and a rollout."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("metaworld", reason="the manipulation extra is not installed")

from envs.metaworld.demos import make_metaworld_store  # noqa: E402
from envs.metaworld.env import MT10_TASKS, MetaWorldEnv, check_task, make_expert  # noqa: E402
from shortcut_policy.data.replay_buffer import ReplayBuffer  # noqa: E402
from shortcut_policy.training.settings import check_train_config  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.envs.manipulation_helpers import tiny_policy_rollout  # noqa: E402


@pytest.fixture(scope="module")
def push_env():
    env = MetaWorldEnv("push", max_steps=120)
    yield env
    env.close()


def test_observations_actions_and_seeded_scenes(push_env):
    obs, info = push_env.reset(seed=3)
    assert set(obs) == {"state"} and obs["state"].shape == (39,)
    assert obs["state"].dtype == np.float32 and info == {"is_success": False, "score": 0.0}
    assert push_env.action_space.shape == (4,)
    again, _ = push_env.reset(seed=3)
    other, _ = push_env.reset(seed=4)
    np.testing.assert_array_equal(obs["state"], again["state"])
    assert not np.allclose(obs["state"][-3:], other["state"][-3:])  # the goal moved
    assert np.abs(obs["state"][-3:]).sum() > 0  # the goal is observed, not zeroed
    step, reward, terminated, truncated, info = push_env.step(np.array([1.0, 0, 0, 0]))
    assert step["state"][0] > obs["state"][0]  # the hand moved along +x
    assert isinstance(reward, float) and not terminated and not truncated
    assert {"is_success", "score", "success"} <= set(info)


@pytest.mark.filterwarnings("ignore:Constant")  # the experts' gains saturate; harmless
@pytest.mark.parametrize("task", ["reach", "push", "pick-place"])
def test_expert_succeeds_on_fixed_seeds(task):
    env, expert = MetaWorldEnv(task, max_steps=200), make_expert(task)
    for seed in (0, 1):
        env.reset(seed=seed)
        for _ in range(200):
            _, _, terminated, truncated, info = env.step(expert.get_action(env.last_raw_obs))
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and info["score"] == 1.0, (task, seed)
    env.close()


def test_episode_truncates_at_the_step_limit():
    env = MetaWorldEnv("reach", max_steps=5)
    env.reset(seed=0)
    ends = [env.step(np.zeros(4))[3] for _ in range(5)]
    assert ends == [False] * 4 + [True]
    env.close()


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="known tasks: .*pick-place.*push"):
        MetaWorldEnv("pusj")
    assert check_task("peg_insert_side") == "peg-insert-side-v3"


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld.env_dict", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[manipulation\]"'):
        MetaWorldEnv("push")


def test_every_mt10_config_names_a_task_with_an_expert():
    for task in MT10_TASKS:
        name = f"metaworld_{task.replace('-', '_')}"
        cfg = make_config(f"task={name}")  # the task file on top of metaworld_base.yaml
        assert cfg.task.env.task == task and cfg.dataset.generator_args.task == task
        assert cfg.dataset.path == f"data/{name}.zarr"
        assert cfg.dataset.generator_args.max_steps == cfg.task.env.max_steps
        check_train_config(cfg)
        make_expert(task)


def test_demo_store_holds_successful_expert_episodes(tmp_path):
    buffer = make_metaworld_store(tmp_path / "reach.zarr", "reach", n_episodes=3, start_seed=5)
    stored = ReplayBuffer.open(tmp_path / "reach.zarr")
    assert stored.n_episodes == 3 and set(stored.data) == {"state", "action"}
    np.testing.assert_array_equal(stored.episode_ends, buffer.episode_ends)
    assert stored.data["state"].shape[1:] == (39,) and stored.data["action"].shape[1:] == (4,)
    assert np.all(np.abs(stored.data["action"]) <= 1.0)
    # Replaying the stored actions from the same seed reproduces the success.
    env = MetaWorldEnv("reach", max_steps=200)
    first = stored.episode(0)
    obs, _ = env.reset(seed=5)
    np.testing.assert_allclose(obs["state"], first["state"][0], atol=1e-6)
    for action in first["action"]:
        _, _, terminated, _, info = env.step(action)
    assert terminated and info["is_success"]
    env.close()


def test_rollout_of_a_tiny_policy_writes_its_report(tmp_path):
    make_metaworld_store(tmp_path / "reach.zarr", "reach", n_episodes=2)
    report = tiny_policy_rollout(tmp_path, "metaworld_reach", tmp_path / "reach.zarr", 12)
    row = report["budgets"][0]
    assert report["task"] == "metaworld_reach" and row["steps"] == 1
    assert [e["seed"] for e in row["episodes"]] == [100000, 100001]
    assert all(e["length"] <= 12 for e in row["episodes"]) and row["faults"] == []


def test_unknown_task_config_lists_the_known_ones():
    from hydra.errors import MissingConfigException

    from tests.conftest import make_config

    with pytest.raises(MissingConfigException, match=r"(?s)lift.*metaworld_pick_place"):
        make_config("task=metaworld_pick")
