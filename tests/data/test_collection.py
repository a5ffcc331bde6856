"""The one collection function: staged per seed, resumed after an interruption, nested
episodes (robomimic's obs maps) kept intact, one summary format."""

import numpy as np
import pytest

from shortcut_policy.data.collection import (
    arrays,
    collect_episodes,
    collection_summary,
    kept_episodes,
)
from shortcut_policy.data.replay_buffer import DatasetError


def nested_episode(seed):
    return {
        "obs": {"eef": np.full((3, 2), seed, np.float32), "gripper": np.zeros((3, 1))},
        "actions": np.full((3, 7), seed, np.float64),
        "success": seed % 2 == 0,
    }


def test_an_interrupted_collection_resumes_and_keeps_nested_episodes(tmp_path):
    calls = []

    def flaky(seed):
        calls.append(seed)
        if seed == 12 and calls.count(12) == 1:
            raise KeyboardInterrupt
        return nested_episode(seed)

    with pytest.raises(KeyboardInterrupt):
        collect_episodes(flaky, range(10, 14), tmp_path / "staging")
    collected = collect_episodes(flaky, range(10, 14), tmp_path / "staging")
    assert calls == [10, 11, 12, 12, 13]  # 10 and 11 were staged and not run again
    seed, episode = collected[3]
    assert seed == 13 and episode["success"] is False
    np.testing.assert_array_equal(episode["obs"]["eef"], np.full((3, 2), 13))
    assert set(arrays(episode)) == {"obs", "actions"}
    summary = collection_summary("lift", collected, keep_failed=False, max_steps=9)
    assert summary == {
        "task": "lift",
        "attempted": 4,
        "kept": 2,
        "success_rate": 0.5,
        "keep_failed": False,
        "seeds": [10, 12],
        "failed_seeds": [11, 13],
        "max_steps": 9,
    }
    assert [s for s, _ in kept_episodes(collected, False, "lift")] == [10, 12]
    with pytest.raises(DatasetError, match="the lift expert succeeded in none of 1"):
        kept_episodes(collected[1:2], False, "lift")
