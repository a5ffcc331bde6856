"""robomimic HDF5 layout: a file built here with h5py converts; write -> read -> zarr round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="the manipulation extra is not installed")

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer  # noqa: E402
from shortcut_policy.data.robomimic_hdf5 import (  # noqa: E402
    ROBOMIMIC_LOW_DIM_KEYS,
    read_robomimic_hdf5,
    robomimic_to_zarr,
    write_robomimic_hdf5,
)

LENGTHS = {0: 5, 1: 7, 2: 4, 10: 6}  # demo number -> steps; demo_10 must come after demo_2


def robomimic_like_file(path):
    """A file laid out like robomimic's lift low_dim_v141.hdf5, demos created out of order."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for number in (10, 2, 0, 1):
            steps = LENGTHS[number]
            demo = data.create_group(f"demo_{number}")
            shapes = {
                "object": 10,
                "robot0_eef_pos": 3,
                "robot0_eef_quat": 4,
                "robot0_gripper_qpos": 2,
                "robot0_joint_pos": 7,
            }
            for key, dim in shapes.items():
                demo.create_dataset(f"obs/{key}", data=rng.normal(size=(steps, dim)))
                demo.create_dataset(f"next_obs/{key}", data=rng.normal(size=(steps, dim)))
            # the first action column carries the demo number, to check the order
            actions = np.concatenate([np.full((steps, 1), number), rng.normal(size=(steps, 6))], 1)
            demo.create_dataset("actions", data=actions)
            demo.create_dataset("states", data=rng.normal(size=(steps, 32)))
            demo.create_dataset("rewards", data=np.zeros(steps))
            demo.create_dataset("dones", data=np.eye(steps)[-1])
            demo.attrs["num_samples"] = steps
        data.attrs["total"] = sum(LENGTHS.values())
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        f.create_dataset("mask/valid", data=np.array([b"demo_10", b"demo_1"]))


def test_robomimic_layout_file_converts_in_demo_order(tmp_path):
    robomimic_like_file(tmp_path / "low_dim.hdf5")
    robomimic_to_zarr(tmp_path / "low_dim.hdf5", tmp_path / "lift.zarr")
    store = ReplayBuffer.open(tmp_path / "lift.zarr")
    assert set(store.data) == {*ROBOMIMIC_LOW_DIM_KEYS, "action"}
    np.testing.assert_array_equal(store.episode_lengths, [5, 7, 4, 6])
    with h5py.File(tmp_path / "low_dim.hdf5") as f:
        for index, number in enumerate((0, 1, 2, 10)):
            episode = store.episode(index)
            demo = f[f"data/demo_{number}"]
            np.testing.assert_allclose(episode["action"], demo["actions"][:], rtol=1e-6)
            np.testing.assert_allclose(episode["object"], demo["obs/object"][:], rtol=1e-6)
            assert episode["robot0_eef_quat"].dtype == np.float32
    import zarr

    meta = zarr.open_group(str(tmp_path / "lift.zarr"), mode="r")["meta"]
    np.testing.assert_array_equal(meta["demo_index"][:], [0, 1, 2, 10])


def test_filter_key_selects_a_mask(tmp_path):
    robomimic_like_file(tmp_path / "f.hdf5")
    buffer, info = read_robomimic_hdf5(tmp_path / "f.hdf5", ["object"], filter_key="valid")
    assert info["demos"] == ["demo_1", "demo_10"] and info["env_args"]["env_name"] == "Lift"
    np.testing.assert_array_equal(buffer.episode_lengths, [7, 6])
    with pytest.raises(DatasetError, match=r"no mask 'train'; its masks: \['valid'\]"):
        read_robomimic_hdf5(tmp_path / "f.hdf5", ["object"], filter_key="train")


def test_missing_observation_key_lists_the_keys_the_file_has(tmp_path):
    robomimic_like_file(tmp_path / "f.hdf5")
    with pytest.raises(DatasetError, match=r"lacks \['robot0_gripper_qvel'\]; it has \[.*object"):
        read_robomimic_hdf5(tmp_path / "f.hdf5", ["object", "robot0_gripper_qvel"])


def test_not_a_robomimic_file(tmp_path):
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DatasetError, match="no 'data' group"):
        read_robomimic_hdf5(tmp_path / "other.hdf5")


def test_write_read_zarr_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    episodes = []
    for steps in (3, 8, 5):
        obs = {
            "object": rng.normal(size=(steps, 10)),
            "robot0_eef_pos": rng.normal(size=(steps, 3)),
        }
        episodes.append(
            {
                "obs": obs,
                "next_obs": obs,
                "actions": rng.uniform(-1, 1, (steps, 7)),
                "states": rng.normal(size=(steps, 32)),
                "rewards": np.zeros(steps),
                "dones": np.eye(steps)[-1],
            }
        )
    written = write_robomimic_hdf5(
        tmp_path / "d.hdf5", episodes, '{"env_name": "Lift"}', masks={"train": [0, 2]}
    )
    assert written == 3 and not (tmp_path / "d.hdf5.tmp").exists()
    with h5py.File(tmp_path / "d.hdf5") as f:
        assert f["data"].attrs["total"] == 16
        assert [f[f"data/demo_{i}"].attrs["num_samples"] for i in range(3)] == [3, 8, 5]
        assert list(f["mask/train"][:]) == [b"demo_0", b"demo_2"]
    keys = ["object", "robot0_eef_pos"]
    robomimic_to_zarr(tmp_path / "d.hdf5", tmp_path / "d.zarr", keys)
    store = ReplayBuffer.open(tmp_path / "d.zarr")
    np.testing.assert_array_equal(store.episode_ends, [3, 11, 16])
    for index, episode in enumerate(episodes):
        back = store.episode(index)
        np.testing.assert_allclose(back["action"], episode["actions"], rtol=1e-6)
        for key in keys:
            np.testing.assert_allclose(back[key], episode["obs"][key], rtol=1e-6)


def test_task_lift_trains_from_a_robomimic_file_named_on_the_command_line(tmp_path):
    from shortcut_policy.tasks import ensure_dataset
    from tests.conftest import make_config

    robomimic_like_file(tmp_path / "low_dim_v141.hdf5")
    cfg = make_config(
        "task=lift",
        f"dataset.path={tmp_path / 'lift_ph.zarr'}",
        f"+dataset.generator_args.hdf5={tmp_path / 'low_dim_v141.hdf5'}",
    )
    store = ReplayBuffer.open(ensure_dataset(cfg.dataset))
    np.testing.assert_array_equal(store.episode_lengths, [5, 7, 4, 6])
    assert set(store.data) == {*cfg.task.obs_keys, "action"}
