"""Late chunks: which action runs at each tick, how joins blend, and what the metrics measure."""

import numpy as np
import pytest

from shortcut_policy.policy.chunk_joins import ChunkQueue, check_join_runs, join_metrics
from tests.conftest import SHORTCUT_POLICY

HORIZON, N_OBS = 16, 2
START = N_OBS - 1


def chunk(k: int) -> np.ndarray:
    """Chunk number k: action i is 100 k + i, so every executed action names its source."""
    return (100.0 * k + np.arange(HORIZON))[:, None]


def run(queue: ChunkQueue, ticks: int) -> list[float]:
    out, k = [], 0
    for _ in range(ticks):
        if queue.needs_chunk:
            queue.add(chunk(k))
            k += 1
        out.append(float(queue.pop()[0]))
    return out


def test_without_delay_each_chunk_runs_its_executed_part_as_before():
    actions = run(ChunkQueue(N_OBS, execute=8), 24)
    want = [100 * k + START + i for k in range(3) for i in range(8)]
    assert actions == want


@pytest.mark.parametrize("delay", [1, 3, 6])
def test_a_late_chunk_takes_over_at_index_delay(delay):
    queue = ChunkQueue(N_OBS, execute=8, delay=delay)
    actions = run(queue, 24)
    # The first chunk is waited for: it runs until the second takes over at tick 8 + delay.
    assert actions[: 8 + delay] == [START + i for i in range(8 + delay)]
    # The second, asked for at tick 8, runs from its index START + delay.
    assert actions[8 + delay] == 100 + START + delay
    assert queue.switch_ticks == [8 + delay, 16 + delay]


@pytest.mark.parametrize("join", ["none", "ensemble"])
def test_a_switch_is_noted_when_the_old_chunk_ends_the_tick_before(join):
    # delay 7: the old chunk's last action (index 15) runs at tick 14, the new one takes over
    # at tick 15, when it is the only chunk left.
    queue = ChunkQueue(N_OBS, execute=8, delay=7, join=join)
    run(queue, 24)
    assert queue.switch_ticks == [15, 23]
    assert len(queue.prefix_errors) == 2


def test_the_prefix_error_compares_the_new_plan_with_what_was_executed():
    queue = ChunkQueue(N_OBS, execute=8, delay=2)
    run(queue, 11)
    # Ticks 8 and 9 executed chunk 0's actions 9 and 10; chunk 1 planned 101 and 102 for them.
    assert queue.prefix_errors == [pytest.approx(92.0)]


def test_ensemble_weights_older_chunks_by_exp_minus_m_i():
    queue = ChunkQueue(N_OBS, execute=8, delay=0, join="ensemble", ensemble_m=0.5)
    actions = run(queue, 9)
    old, new = chunk(0)[START + 8, 0], chunk(1)[START, 0]
    weights = np.exp(-0.5 * np.arange(2))
    assert actions[8] == pytest.approx((weights[0] * old + weights[1] * new) / weights.sum())


def test_a_chunk_too_short_for_the_delay_is_refused():
    queue = ChunkQueue(N_OBS, execute=8, delay=8)
    with pytest.raises(ValueError, match="lower execute or delay"):
        queue.add(chunk(0))


def test_unknown_join_is_refused():
    with pytest.raises(ValueError, match="join='blend'; choose one of none, ensemble"):
        ChunkQueue(N_OBS, execute=8, join="blend")


def test_the_boundary_ratio_is_the_switch_jump_over_the_other_jumps():
    queue = ChunkQueue(N_OBS, execute=8)
    queue.executed = [np.array([float(x)]) for x in [0, 1, 2, 3, 13, 14, 15]]
    queue.switch_ticks = [4]  # the jump from 3 to 13
    metrics = join_metrics(queue)
    assert metrics["boundary_ratio"] == pytest.approx(10.0)
    assert metrics["prefix_error"] is None  # no delay, nothing to compare
    # Third differences of 0 1 2 3 13 14 15: 0, 9, -18, 9 -> mean |.| 9.
    assert metrics["jerk"] == pytest.approx(9.0)


def test_the_policy_blends_chunks_when_asked_and_refuses_what_it_cannot_do():
    from shortcut_policy import ShortcutPolicy

    plain = ShortcutPolicy.from_pretrained("data/pretrained/push_t", device="cpu")
    blended = ShortcutPolicy.from_pretrained(
        "data/pretrained/push_t", device="cpu", join="ensemble"
    )
    obs = {key: np.zeros(shape, np.float32) for key, shape in plain.obs_shapes.items()}
    runs = []
    for policy in (plain, blended):
        policy.seed(0)
        runs.append(np.stack([policy.select_action(obs) for _ in range(9)]))
    # The first chunk runs alone; at tick 8 the ensemble mixes in the first chunk's next action.
    np.testing.assert_allclose(runs[0][:8], runs[1][:8])
    assert not np.allclose(runs[0][8], runs[1][8])
    assert blended.buffer.queue.join == "ensemble"
    with pytest.raises(ValueError, match="not available with async_chunks=True"):
        ShortcutPolicy.from_pretrained("data/pretrained/push_t", join="ensemble", async_chunks=True)


def test_the_committed_prefix_holds_the_executed_and_the_planned_actions():
    queue = ChunkQueue(N_OBS, execute=8, delay=2, join="prefix")
    assert queue.committed_prefix(HORIZON) == (0, None)  # an episode's first chunk: nothing
    run(queue, 8)  # ticks 0..7 executed chunk 0's actions 1..8; a request is due at tick 8
    length, values = queue.committed_prefix(HORIZON)
    # Position 0 is tick 7 (executed: 8); 1 and 2 are ticks 8 and 9, still chunk 0's: 9, 10.
    assert length == START + 2
    assert values[:length, 0].tolist() == [8.0, 9.0, 10.0] and not values[length:].any()


def test_with_a_delay_longer_than_execute_the_prefix_is_what_will_run():
    """execute=2, delay=3: the newest chunk is still waiting when the next is asked for."""
    queue = ChunkQueue(N_OBS, execute=2, delay=3, join="prefix")
    planned = {}
    for _ in range(12):
        if queue.needs_chunk:
            length, values = queue.committed_prefix(HORIZON)
            first = queue.tick - START
            planned.update(
                {first + i: values[i, 0] for i in range(length) if first + i >= queue.tick}
            )
            queue.add(chunk(queue.tick))
        queue.pop()
    executed = [float(a[0]) for a in queue.executed]
    assert planned and all(executed[tick] == value for tick, value in planned.items() if tick < 12)


def test_a_mask_that_is_not_a_prefix_is_refused():
    from shortcut_policy.policy.chunk_joins import checked_given

    mask = np.array([[False, True, False, False]])
    with pytest.raises(ValueError, match="first positions of each chunk only"):
        checked_given((mask, np.zeros((1, 4, 2))), rows=1, horizon=4, action_dim=2, prefix_max=3)


def test_the_old_plan_is_shifted_to_the_new_chunk_and_held_past_its_end():
    queue = ChunkQueue(N_OBS, execute=8, delay=2, join="warm")
    assert queue.planned(HORIZON) is None  # an episode's first chunk: no old plan
    run(queue, 8)  # ticks 0..7 executed chunk 0's actions 1..8
    plan = queue.planned(HORIZON)[:, 0]
    # Position 0 is tick 7 (executed: 8); then chunk 0's plan 9 .. 15, then its last held.
    assert plan.tolist() == [8.0 + i for i in range(8)] + [15.0] * 8


def test_a_warm_join_starts_each_new_chunk_from_the_old_plan():
    """With t0 = 15/16 a 1-pass sample is 15/16 of the old plan: the new chunk continues it."""
    from shortcut_policy import ShortcutPolicy

    runs = {}
    for join in ("none", "warm"):
        policy = ShortcutPolicy.from_pretrained(
            SHORTCUT_POLICY, device="cpu", join=join, warm_t=15 / 16
        )
        obs = {key: np.zeros(shape, np.float32) for key, shape in policy.obs_shapes.items()}
        policy.seed(0)
        history = {k: np.stack([v, v])[None] for k, v in obs.items()}
        first = policy.predict_action_chunk(history)[0]
        policy.seed(0)
        actions = np.stack([policy.select_action(obs) for _ in range(16)])
        runs[join] = actions
        assert policy.buffer.queue.join == join
    np.testing.assert_allclose(runs["none"][:8], runs["warm"][:8])  # the first chunk: cold
    old_plan = first[START + 8 :]  # what the first chunk planned for ticks 8..14
    gap = {join: np.abs(a[8 : 8 + len(old_plan)] - old_plan).mean() for join, a in runs.items()}
    assert gap["warm"] < 0.25 * gap["none"], gap


def test_a_warm_join_is_refused_where_it_cannot_run():
    from shortcut_policy import ShortcutPolicy

    with pytest.raises(ValueError, match=r"warm_t is where a warm sample starts"):
        ShortcutPolicy.from_pretrained("data/pretrained/push_t", join="warm", warm_t=1.0)
    # A shortcut network's jumps from warm_t must be trained sizes; MeanFlow (the shipped
    # policy) jumps any interval.
    with pytest.raises(ValueError, match="1 - warm_t a power of two"):
        check_join_runs("warm", "shortcut", warm_t=0.6)
    check_join_runs("warm", "shortcut", warm_t=0.75)
    check_join_runs("warm", "meanflow", warm_t=0.6)
    with pytest.raises(ValueError, match="a time in"):
        ShortcutPolicy.from_pretrained("data/pretrained/push_t", join="warm", warm_t="0.5")


def test_a_batch_of_first_and_later_chunks_starts_only_the_later_ones_warm():
    from shortcut_policy.evaluation.episodes import _predict, _Slot
    from shortcut_policy.policy.chunk_buffer import ChunkBuffer

    class Recorder:
        horizon, warm_t = HORIZON, 0.5
        network = type("Net", (), {"spec": {"action_dim": 1}})()
        calls = []

        def predict_checked(self, batch, steps, given=None, warm=None):
            rows = len(batch["x"])
            self.calls.append((rows, None if warm is None else warm.shape))
            return np.zeros((rows, HORIZON, 1), np.float32)

    slots = []
    for has_plan in (True, False, True):
        buffer = ChunkBuffer(N_OBS, 8, join="warm")
        buffer.add_observation({"x": np.zeros(3, np.float32)})
        if has_plan:
            run(buffer.queue, 8)
        slots.append(_Slot(None, buffer, False, None))
    chunks = _predict(Recorder(), slots, 1)
    assert chunks.shape == (3, HORIZON, 1)
    # One call for the two rows with an old plan (warm), one for the first chunk (cold).
    assert Recorder.calls == [(2, (2, HORIZON, 1)), (1, None)]
