import numpy as np
import pytest
import zarr
import zarr.storage

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer


def episodes(lengths=(5, 3, 7), seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "state": rng.normal(size=(n, 5)).astype(np.float32),
            "action": rng.normal(size=(n, 2)).astype(np.float32),
        }
        for n in lengths
    ]


def write_diffusion_policy_layout(path, zip_store=False, images=False):
    """A store shaped like Diffusion Policy's pusht_cchi_v7_replay.zarr (format 2); with
    ``images``, its camera frames too (``img``, uint8 96 x 96 x 3): the pusher's position is
    only inside ``state``."""
    rng = np.random.default_rng(1)
    n = 30
    store = zarr.storage.ZipStore(str(path), mode="w") if zip_store else str(path)
    root = zarr.open_group(store, mode="w", zarr_format=2)
    data = {
        "state": rng.uniform(0, 512, (n, 5)).astype(np.float32),
        "keypoint": rng.uniform(0, 512, (n, 9, 2)).astype(np.float32),
        "action": rng.uniform(0, 512, (n, 2)).astype(np.float32),
        "n_contacts": np.zeros((n, 1), np.float32),
    }
    if images:
        data["img"] = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
    for key, value in data.items():
        root.create_array(f"data/{key}", data=value, chunks=(10, *value.shape[1:]))
    root.create_array("meta/episode_ends", data=np.array([12, 30], dtype=np.int64))
    if zip_store:
        store.close()
    return data


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_round_trip_keeps_arrays_and_episode_boundaries(tmp_path, zarr_format):
    buffer = ReplayBuffer.from_episodes(episodes())
    buffer.save(tmp_path / "demo.zarr", zarr_format=zarr_format)
    loaded = ReplayBuffer.open(tmp_path / "demo.zarr")
    assert loaded.episode_ends.tolist() == [5, 8, 15]
    for key in ("state", "action"):
        np.testing.assert_array_equal(loaded.data[key], buffer.data[key])
    np.testing.assert_array_equal(loaded.episode(1)["action"], episodes()[1]["action"])
    assert not (tmp_path / "demo.zarr.tmp").exists()


@pytest.mark.parametrize("zip_store", [False, True])
def test_reads_diffusion_policy_pusht_layout(tmp_path, zip_store):
    path = tmp_path / ("pusht.zarr.zip" if zip_store else "pusht.zarr")
    data = write_diffusion_policy_layout(path, zip_store)
    buffer = ReplayBuffer.open(path, keys=["state", "keypoint", "action"])
    assert buffer.n_episodes == 2 and buffer.episode_lengths.tolist() == [12, 18]
    np.testing.assert_array_equal(buffer.data["keypoint"], data["keypoint"])
    assert "n_contacts" not in buffer.data


def test_missing_path_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.path"):
        ReplayBuffer.open(tmp_path / "nope.zarr")


def test_store_without_episode_ends(tmp_path):
    root = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    root.create_array("data/action", data=np.zeros((4, 2), np.float32))
    with pytest.raises(DatasetError, match="meta/episode_ends"):
        ReplayBuffer.open(tmp_path / "x.zarr")


def test_missing_keys_are_listed_with_the_keys_found(tmp_path):
    ReplayBuffer.from_episodes(episodes()).save(tmp_path / "d.zarr")
    with pytest.raises(DatasetError, match=r"lacks data keys \['img'\].*\['action', 'state'\]"):
        ReplayBuffer.open(tmp_path / "d.zarr", keys=["img", "action"])


def test_lengths_that_disagree_with_episodes(tmp_path):
    root = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w")
    root.create_array("data/action", data=np.zeros((9, 2), np.float32))
    root.create_array("meta/episode_ends", data=np.array([4, 10]))
    with pytest.raises(DatasetError, match="has 9 steps but meta/episode_ends says 10"):
        ReplayBuffer.open(tmp_path / "bad.zarr")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_reported_with_its_episode(bad):
    eps = episodes()
    eps[2]["action"][1, 0] = bad
    with pytest.raises(DatasetError, match=r"data/action contains NaN or inf .*episode 2"):
        ReplayBuffer.from_episodes(eps)


def test_corrupt_store_is_reported(tmp_path):
    path = tmp_path / "junk.zarr.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a readable zarr store"):
        ReplayBuffer.open(path)


def test_images_are_chunked_per_frame(tmp_path):
    eps = [{"img": np.zeros((4, 8, 8, 3), np.uint8), "action": np.zeros((4, 2), np.float32)}]
    ReplayBuffer.from_episodes(eps).save(tmp_path / "img.zarr")
    array = zarr.open_group(str(tmp_path / "img.zarr"), mode="r")["data/img"]
    assert array.chunks == (1, 8, 8, 3)
