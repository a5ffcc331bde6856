import json

import numpy as np
import pytest

import envs.push_t.demos as demos
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer


def fake_episode(seed, render=False, success=True):
    n = 5 + seed % 3
    return {
        "state": np.full((n, 5), seed, np.float32),
        "keypoint": np.zeros((n, 8, 2), np.float32),
        "action": np.full((n, 2), seed, np.float32),
        "success": success,
        "score": 1.0 if success else 0.3,
    }


def test_collection_writes_a_store_with_the_right_episode_boundaries(tmp_path):
    buffer = demos.make_push_t_store(tmp_path / "pt.zarr", n_episodes=2, start_seed=3)
    loaded = ReplayBuffer.open(tmp_path / "pt.zarr")
    assert loaded.n_episodes == 2 and loaded.episode_ends.tolist() == buffer.episode_ends.tolist()
    assert loaded.data["keypoint"].shape[1:] == (8, 2) and loaded.data["action"].shape[1] == 2
    summary = json.loads((tmp_path / "pt.zarr" / "summary.json").read_text())
    assert summary["attempted"] == 2 and summary["seeds"] == [3, 4]
    assert not (tmp_path / "pt.zarr.partial").exists()


def test_interrupted_collection_resumes_and_never_looks_complete(tmp_path, monkeypatch):
    calls = []

    def flaky(seed, render=False):
        calls.append(seed)
        if seed == 2 and calls.count(2) == 1:
            raise KeyboardInterrupt
        return fake_episode(seed)

    monkeypatch.setattr(demos, "run_expert_episode", flaky)
    with pytest.raises(KeyboardInterrupt):
        demos.make_push_t_store(tmp_path / "pt.zarr", n_episodes=4)
    assert not (tmp_path / "pt.zarr").exists()
    demos.make_push_t_store(tmp_path / "pt.zarr", n_episodes=4)
    assert calls == [0, 1, 2, 2, 3]  # seeds 0 and 1 were not run again
    buffer = ReplayBuffer.open(tmp_path / "pt.zarr")
    assert buffer.n_episodes == 4
    np.testing.assert_array_equal(buffer.episode(2)["action"][:, 0], 2)


def test_failed_episodes_are_left_out_and_none_at_all_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(
        demos,
        "run_expert_episode",
        lambda seed, render=False: fake_episode(seed, success=seed != 1),
    )
    buffer = demos.make_push_t_store(tmp_path / "a.zarr", n_episodes=3)
    assert buffer.n_episodes == 2
    summary = json.loads((tmp_path / "a.zarr" / "summary.json").read_text())
    assert summary["failed_seeds"] == [1] and summary["kept"] == 2
    monkeypatch.setattr(
        demos, "run_expert_episode", lambda seed, render=False: fake_episode(seed, success=False)
    )
    with pytest.raises(DatasetError, match="succeeded in none of 2"):
        demos.make_push_t_store(tmp_path / "b.zarr", n_episodes=2)


def test_zero_episodes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="n_episodes must be at least 1"):
        demos.make_push_t_store(tmp_path / "c.zarr", n_episodes=0)
