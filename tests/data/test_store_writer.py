"""The streaming store writer: the same store as ``ReplayBuffer.save``, nothing half-written."""

import numpy as np
import pytest

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer
from shortcut_policy.data.store_writer import StoreWriter


def episodes():
    rng = np.random.default_rng(0)
    for length in (5, 3, 7):
        yield {
            "action": rng.normal(size=(length, 2)).astype(np.float32),
            "img": rng.integers(0, 255, size=(length, 8, 8, 3), dtype=np.uint8),
        }


def test_episodes_written_in_blocks_read_back_as_save_writes_them(tmp_path):
    ReplayBuffer.from_episodes(episodes()).save(tmp_path / "saved.zarr")
    with StoreWriter(tmp_path / "streamed.zarr") as store:
        for episode in episodes():
            store.add("action", episode["action"])
            for start in range(0, len(episode["img"]), 2):  # frames two at a time
                store.add("img", episode["img"][start : start + 2])
            store.end_episode()
    saved = ReplayBuffer.open(tmp_path / "saved.zarr", lazy_frames=False)
    streamed = ReplayBuffer.open(tmp_path / "streamed.zarr", lazy_frames=False)
    assert streamed.episode_ends.tolist() == saved.episode_ends.tolist() == [5, 8, 15]
    for key in ("action", "img"):
        assert streamed.data[key].dtype == saved.data[key].dtype
        np.testing.assert_array_equal(streamed.data[key], saved.data[key])


def test_an_episode_whose_keys_disagree_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(DatasetError, match="different lengths"):
        with StoreWriter(tmp_path / "out.zarr") as store:
            store.add("action", np.zeros((4, 2), np.float32))
            store.add("img", np.zeros((3, 8, 8, 3), np.uint8))
            store.end_episode()
    assert not (tmp_path / "out.zarr").exists() and not (tmp_path / "out.zarr.tmp").exists()


def test_frames_of_another_shape_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="every frame of a camera must have one shape"):
        with StoreWriter(tmp_path / "out.zarr") as store:
            store.add("img", np.zeros((3, 8, 8, 3), np.uint8))
            store.add("img", np.zeros((3, 9, 8, 3), np.uint8))
