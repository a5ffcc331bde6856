"""robosuite Lift and Can: shapes, the scripted experts, HDF5 -> zarr demos, a Lift rollout."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("robosuite", reason="the manipulation extra is not installed")
h5py = pytest.importorskip("h5py", reason="the manipulation extra is not installed")

from envs.robosuite.demos import collect_robosuite_hdf5, make_robosuite_store  # noqa: E402
from envs.robosuite.env import OBS_KEYS, RobosuiteEnv  # noqa: E402
from envs.robosuite.expert import make_expert  # noqa: E402
from shortcut_policy.data.replay_buffer import ReplayBuffer  # noqa: E402
from tests.envs.manipulation_helpers import tiny_policy_rollout  # noqa: E402

LOW_DIM = ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]


@pytest.fixture(scope="module")
def lift_env():
    env = RobosuiteEnv("lift", max_steps=80)
    yield env
    env.close()


@pytest.fixture(scope="module")
def lift_demos(lift_env, tmp_path_factory):
    """Two expert episodes (seeds 3, 4) in robomimic's layout, and the collection summary."""
    path = tmp_path_factory.mktemp("lift") / "lift.hdf5"
    return path, collect_robosuite_hdf5(path, "lift", n_episodes=2, start_seed=3, env=lift_env)


def run_expert(env, task, seed, limit):
    env.reset(seed=seed)
    expert = make_expert(task, env)
    expert.reset(env.raw_obs)
    for _ in range(limit):
        _, _, terminated, truncated, info = env.step(expert.act(env.raw_obs))
        if terminated or truncated:
            return info
    return info


def test_lift_observations_actions_and_seeds(lift_env):
    obs, info = lift_env.reset(seed=7)
    shapes = {key: value.shape for key, value in obs.items()}
    assert shapes == {
        "object": (10,),
        "robot0_eef_pos": (3,),
        "robot0_eef_quat": (4,),
        "robot0_gripper_qpos": (2,),
        "robot0_gripper_qvel": (2,),
        "robot0_joint_pos": (7,),
        "robot0_joint_vel": (7,),
    }
    assert all(value.dtype == np.float32 for value in obs.values())
    assert lift_env.action_space.shape == (7,) and not info["is_success"]
    again, _ = lift_env.reset(seed=7)
    other, _ = lift_env.reset(seed=8)
    np.testing.assert_allclose(obs["object"], again["object"], atol=1e-6)
    assert not np.allclose(obs["object"][:3], other["object"][:3])  # the cube moved
    start = other["robot0_eef_pos"]
    for _ in range(5):
        moved, reward, terminated, truncated, _ = lift_env.step(np.array([0, 0, 1, 0, 0, 0, -1.0]))
    assert moved["robot0_eef_pos"][2] > start[2] + 0.02  # OSC moved the hand up
    assert reward == 0.0 and not terminated and not truncated
    assert lift_env.sim_state().ndim == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_lift_expert_succeeds(lift_env, seed):
    info = run_expert(lift_env, "lift", seed, 80)
    assert info["is_success"] and info["score"] == 1.0


def test_can_env_shapes_and_expert_succeeds():
    env = RobosuiteEnv("can", max_steps=200)
    obs, _ = env.reset(seed=0)
    assert obs["object"].shape == (14,) and set(obs) == set(OBS_KEYS)
    assert run_expert(env, "can", 0, 200)["is_success"]
    env.close()


def test_square_env_shapes_and_expert_puts_the_nut_on_the_peg():
    env = RobosuiteEnv("square", max_steps=300)
    obs, _ = env.reset(seed=0)
    assert obs["object"].shape == (14,) and set(obs) == set(OBS_KEYS)
    assert run_expert(env, "square", 0, 300)["is_success"]
    inner = env.env
    nut = inner.sim.data.body_xpos[inner.obj_body_id["SquareNut"]]
    peg = inner.sim.data.body_xpos[inner.peg1_body_id]
    assert np.linalg.norm(nut[:2] - peg[:2]) < 0.03 and nut[2] < 0.87  # around the peg, low
    env.close()


def test_unknown_task_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="known tasks: lift, can, square"):
        RobosuiteEnv("stack")
    monkeypatch.setitem(sys.modules, "robosuite", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[manipulation\]"'):
        RobosuiteEnv("lift")


def test_hdf5_written_read_back_and_converted_to_zarr(lift_demos, tmp_path):
    hdf5, summary = lift_demos
    assert summary["kept"] == 2 and summary["failed_seeds"] == [] and summary["seeds"] == [3, 4]
    with h5py.File(hdf5) as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        assert env_args["env_kwargs"]["robots"] == "Panda"
        demos = [f[f"data/demo_{i}"] for i in range(2)]
        lengths = [int(d.attrs["num_samples"]) for d in demos]
        assert f["data"].attrs["total"] == sum(lengths)
        for demo, steps in zip(demos, lengths):
            assert set(demo) == {"obs", "next_obs", "actions", "states", "rewards", "dones"}
            assert set(demo["obs"]) == set(OBS_KEYS) and demo["actions"].shape == (steps, 7)
            assert demo["dones"][-1] == 1 and demo["rewards"][-1] == 1.0
            np.testing.assert_allclose(demo["obs"]["object"][1:], demo["next_obs"]["object"][:-1])
        arrays = {key: np.concatenate([d["obs"][key][:] for d in demos]) for key in LOW_DIM}
        actions = np.concatenate([d["actions"][:] for d in demos])
    (tmp_path / "lift.hdf5").symlink_to(hdf5)  # the generator finds it beside the store
    buffer = make_robosuite_store(tmp_path / "lift.zarr", "lift", obs_keys=LOW_DIM)
    store = ReplayBuffer.open(tmp_path / "lift.zarr")
    np.testing.assert_array_equal(store.episode_ends, np.cumsum(lengths))
    np.testing.assert_array_equal(store.episode_ends, buffer.episode_ends)
    np.testing.assert_allclose(store.data["action"], actions, rtol=1e-6)
    for key in LOW_DIM:
        np.testing.assert_allclose(store.data[key], arrays[key], rtol=1e-6)


def test_rollout_of_a_tiny_policy_on_lift_writes_its_report(lift_demos, tmp_path):
    (tmp_path / "lift.hdf5").symlink_to(lift_demos[0])
    make_robosuite_store(tmp_path / "lift.zarr", "lift")
    report = tiny_policy_rollout(tmp_path, "lift", tmp_path / "lift.zarr", 10)
    row = report["budgets"][0]
    assert report["task"] == "lift" and [e["seed"] for e in row["episodes"]] == [100000, 100001]
    assert all(e["length"] <= 10 for e in row["episodes"]) and row["faults"] == []
