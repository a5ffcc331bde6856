import numpy as np
import pytest

from shortcut_policy.data.dataset import SequenceDataset, split_episodes
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer
from shortcut_policy.data.windows import read_window, sequence_indices


def test_indices_cover_each_episode_with_padding_and_never_cross_borders():
    ends = np.array([5, 8])
    rows = sequence_indices(ends, horizon=4, pad_before=1, pad_after=2)
    # Episode 0 (length 5): starts -1..3 -> 5 windows; episode 1 (length 3): starts -1..1 -> 3.
    assert len(rows) == 8
    first = rows[0].tolist()
    assert first == [0, 3, 1, 4]  # one padded step before the episode
    for buffer_start, buffer_end, _, _ in rows[:5]:
        assert 0 <= buffer_start < buffer_end <= 5
    for buffer_start, buffer_end, _, _ in rows[5:]:
        assert 5 <= buffer_start < buffer_end <= 8


def test_windows_repeat_edge_frames():
    data = {"x": np.arange(8, dtype=np.float32)[:, None]}
    ends = np.array([5, 8])
    rows = sequence_indices(ends, horizon=4, pad_before=1, pad_after=2)
    first = read_window(data, rows[0], 4, ["x"], {})["x"][:, 0]
    assert first.tolist() == [0, 0, 1, 2]
    last_of_ep0 = read_window(data, rows[4], 4, ["x"], {})["x"][:, 0]
    assert last_of_ep0.tolist() == [3, 4, 4, 4]
    last = read_window(data, rows[-1], 4, ["x"], {})["x"][:, 0]
    assert last.tolist() == [6, 7, 7, 7]
    obs_only = read_window(data, rows[0], 4, ["x"], {"x": 2})["x"][:, 0]
    assert obs_only.tolist() == [0, 0]


def make_buffer(lengths=(20, 30, 25)):
    episodes = []
    for i, n in enumerate(lengths):
        t = np.arange(n, dtype=np.float32)
        episodes.append(
            {"state": np.stack([t, np.full(n, i)], -1), "action": np.stack([t + 100, t], -1)}
        )
    return ReplayBuffer.from_episodes(episodes)


def test_dataset_sample_pairs_obs_history_with_chunk_start():
    ds = SequenceDataset(
        make_buffer(), ["state"], "action", horizon=16, n_obs_steps=2, n_action_steps=8
    )
    sample = ds[0]
    assert sample["obs"]["state"].shape == (2, 2) and sample["action"].shape == (16, 2)
    # The first window starts one step before the episode: obs [0, 0], actions [100, 100, 101 ...].
    assert sample["obs"]["state"][:, 0].tolist() == [0, 0]
    assert sample["action"][:3, 0].tolist() == [100, 100, 101]


def test_horizon_longer_than_every_episode_is_an_error():
    with pytest.raises(DatasetError, match="longer than every episode"):
        SequenceDataset(make_buffer((5, 6)), ["state"], "action", 16, 2, 8)


def test_split_is_by_episode_and_disjoint():
    train, val = split_episodes(20, 0.2, seed=0)
    assert len(val) == 4 and len(train) == 16
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(20))
    assert split_episodes(1, 0.5, 0)[0].tolist() == [0]
