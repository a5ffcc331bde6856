"""Non-blocking chunks: the new chunk is aligned by skipping what ran meanwhile, and
select_action waits only for the first chunk (or when inference outlasts a whole horizon)."""

import threading

import numpy as np
import pytest

from shortcut_policy.policy.async_chunks import AsyncChunks

H, N_OBS, N_ACT = 16, 2, 8


class HeldInference:
    """A predict whose calls finish only when the test lets them. Chunk ``c`` of a history whose
    newest observation was at tick ``t`` has ``c[i] = 100 t + i``, so actions name their source."""

    def __init__(self):
        self.release = {}
        self.hold = False

    def __call__(self, history):
        tick = int(history["t"][-1, 0])
        gate = self.release.setdefault(tick, threading.Event())
        if not self.hold:
            gate.set()
        gate.wait(timeout=10)
        return (100.0 * tick + np.arange(H, dtype=np.float32))[:, None]

    def finish(self, chunks, tick):
        self.release.setdefault(tick, threading.Event()).set()
        chunks.pending[0].result(timeout=10)


def act(chunks, tick):
    return float(chunks.select_action({"t": np.array([tick], np.float32)})[0])


def test_the_next_chunk_skips_the_actions_executed_while_it_was_computed():
    infer = HeldInference()
    chunks = AsyncChunks(infer, N_OBS, H, N_ACT, lead=1)
    # ticks 0..6: the first chunk (from tick 0), executed from its index n_obs_steps - 1 = 1
    assert [act(chunks, t) for t in range(7)] == [1 + t for t in range(7)]
    infer.hold = True
    assert act(chunks, 7) == 8  # tick 7 = 8 - lead: the next chunk is requested from obs 7
    assert chunks.pending is not None and chunks.pending[1] == 7
    # not back yet at tick 8 (where it was due) or 9: the first chunk's later actions fill in
    assert [act(chunks, 8), act(chunks, 9)] == [9, 10]
    infer.finish(chunks, 7)
    # it arrives before tick 10: that tick's action is its index 1 + (10 - 7)
    assert [act(chunks, t) for t in range(10, 15)] == [704, 705, 706, 707, 708]
    infer.hold = False
    assert act(chunks, 15) == 709  # the next request (from obs 15) goes out at 7 + 8
    chunks.pending[0].result(timeout=10)
    assert act(chunks, 16) == 1502  # on time: used from 15 + lead, index 1 + 1
    assert chunks.waits == 0


def test_it_waits_only_when_the_old_chunk_runs_out():
    infer = HeldInference()
    chunks = AsyncChunks(infer, N_OBS, H, N_ACT, lead=1)
    [act(chunks, t) for t in range(7)]
    infer.hold = True
    act(chunks, 7)
    # the first chunk has actions up to index 15 = tick 14; tick 15 must wait for the new one
    assert [act(chunks, t) for t in range(8, 15)] == list(range(9, 16))
    threading.Timer(0.2, infer.release.setdefault(7, threading.Event()).set).start()
    assert act(chunks, 15) == 700 + 1 + 8
    assert chunks.waits == 1


def test_reset_drops_a_request_of_the_old_episode():
    infer = HeldInference()
    chunks = AsyncChunks(infer, N_OBS, H, N_ACT, lead=1)
    [act(chunks, t) for t in range(8)]  # a request from tick 7 is on its way
    infer.finish(chunks, 7)
    chunks.reset()
    assert act(chunks, 0) == 1  # the new episode starts from its own first chunk
    assert chunks.ready is None


@pytest.mark.parametrize("lead", [-1, N_ACT])
def test_lead_is_checked(lead):
    with pytest.raises(ValueError, match=r"async_lead must be in \[0, n_action_steps - 1\]"):
        AsyncChunks(lambda h: None, N_OBS, H, N_ACT, lead=lead)


def test_with_prefix_each_request_carries_the_executed_and_the_planned_actions():
    seen = []

    def predict(history, given=None):
        seen.append(given)
        tick = int(history["t"][-1, 0])
        return (100.0 * tick + np.arange(H, dtype=np.float32))[:, None]

    chunks = AsyncChunks(predict, N_OBS, H, N_ACT, lead=2, prefix=True)
    for tick in range(8):
        act(chunks, tick)
        if chunks.pending is not None:
            chunks.pending[0].result(timeout=10)
    assert seen[0] is None  # the episode's first chunk: nothing decided yet
    mask, values = seen[1]  # asked at tick 6 = 8 - lead
    assert mask[0].tolist() == [True] * (N_OBS - 1 + 2) + [False] * (H - 3)
    # Position 0 is tick 5 (executed: chunk 0's action 6); 1, 2 are ticks 6, 7 (planned: 7, 8).
    assert values[0, :3, 0].tolist() == [6.0, 7.0, 8.0]
    chunks.close()


def test_with_warm_each_request_carries_the_old_plan_shifted_to_its_ticks():
    seen = []

    def predict(history, warm=None):
        seen.append(warm)
        tick = int(history["t"][-1, 0])
        return (100.0 * tick + np.arange(H, dtype=np.float32))[:, None]

    chunks = AsyncChunks(predict, N_OBS, H, N_ACT, lead=2, warm=True)
    for tick in range(8):
        act(chunks, tick)
        if chunks.pending is not None:
            chunks.pending[0].result(timeout=10)
    assert seen[0] is None  # the episode's first chunk starts from noise
    plan = seen[1][0, :, 0]  # asked at tick 6 = 8 - lead
    # Position 0 is tick 5 (executed: 6); then chunk 0's plan for ticks 6.. (7 ... 15), held.
    assert plan.tolist() == [6.0] + [7.0 + i for i in range(9)] + [15.0] * 6
    chunks.close()


def test_a_warm_policy_runs_without_blocking():
    from shortcut_policy import ShortcutPolicy

    policy = ShortcutPolicy.from_pretrained(
        "data/pretrained/push_t", device="cpu", join="warm", async_chunks=True
    )
    obs = {key: np.zeros(shape, np.float32) for key, shape in policy.obs_shapes.items()}
    actions = np.stack([policy.select_action(obs) for _ in range(20)])
    assert actions.shape == (20, 2) and np.isfinite(actions).all()
    policy.chunks.close()
