import numpy as np
import pytest

from shortcut_policy.data.obs_space import (
    add_derived,
    checked_against_store,
    low_dim_keys,
    obs_types,
    rgb_keys,
    stored_keys,
    task_observations,
)
from shortcut_policy.data.replay_buffer import DatasetError

STORE = {
    "img": np.zeros((5, 32, 32, 3), np.uint8),
    "pos": np.zeros((5, 2), np.float32),
    "depth": np.zeros((5, 32, 32, 3), np.float32),
}


def test_short_and_full_forms_describe_the_same_vectors():
    short = task_observations({"obs_keys": ["pos"]})
    full = task_observations({"obs": {"pos": {"type": "low_dim"}}})
    assert short == full == {"pos": {"type": "low_dim", "shape": None}}
    assert checked_against_store(short, STORE, "s") == {"pos": {"type": "low_dim", "shape": [2]}}


def test_camera_entries_need_an_hwc_shape_and_uint8_frames():
    with pytest.raises(ValueError, match=r"task.obs.img is a camera .* \[H, W, 3\]"):
        task_observations({"obs": {"img": {"type": "rgb", "shape": [3, 32, 32]}}})
    with pytest.raises(ValueError, match="known types"):
        task_observations({"obs": {"img": {"type": "camera", "shape": [32, 32, 3]}}})
    described = task_observations({"obs": {"depth": {"type": "rgb", "shape": [32, 32, 3]}}})
    with pytest.raises(DatasetError, match="camera data/depth is float32"):
        checked_against_store(described, STORE, "s")


def test_shape_mismatch_names_key_and_fix():
    described = task_observations({"obs": {"pos": {"shape": [3]}}})
    with pytest.raises(DatasetError, match=r"data/pos has shape \[2\] .* task.obs.pos.shape"):
        checked_against_store(described, STORE, "s")


def test_both_forms_at_once_are_refused():
    with pytest.raises(ValueError, match="both obs and obs_keys"):
        task_observations({"name": "t", "obs": {"pos": {}}, "obs_keys": ["pos"]})


def test_specs_without_types_are_all_low_dimensional():
    old = {"obs_shapes": {"keypoint": [8, 2], "state": [5]}}
    assert obs_types(old) == {"keypoint": "low_dim", "state": "low_dim"}
    new = {"obs_shapes": {"img": [8, 8, 3], "pos": [2]}, "obs_types": {"img": "rgb"}}
    assert rgb_keys(new) == ["img"] and low_dim_keys(new) == ["pos"]


def test_a_derived_observation_reads_columns_of_its_source():
    task = {"name": "t", "obs": {"pos": {"shape": [2], "source": "state", "columns": [1, 3]}}}
    described = task_observations(task)
    assert stored_keys(described) == ["state"]
    store = {"state": np.arange(20, dtype=np.float32).reshape(4, 5)}
    add_derived(described, store, "s.zarr")
    np.testing.assert_array_equal(store["pos"], store["state"][:, 1:3])
    with pytest.raises(DatasetError, match=r"columns 4:9 of data/state, which has shape \[5\]"):
        bad = {"name": "t", "obs": {"pos": {"source": "state", "columns": [4, 9]}}}
        add_derived(task_observations(bad), dict(store), "s.zarr")
    with pytest.raises(ValueError, match="must be low_dim with columns: \\[start, stop\\]"):
        task_observations({"name": "t", "obs": {"p": {"source": "state", "columns": [2, 1]}}})
