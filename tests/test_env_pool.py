"""Tests for the subprocess environment pool: per-slot results, crash / hang / death faults."""

from __future__ import annotations

import functools
import multiprocessing
import os
import time

import gymnasium
import numpy as np
import pytest

from shortcut_policy.evaluation.env_pool import EnvFault, EnvPool

STEP_TIMEOUT_S = 1.0
CRASH_SEED, HANG_SEED, EXIT_SEED = 7, 8, 9  # episodes seeded with these fail at FAULT_STEP
FAULT_STEP = 2


class CountingEnv(gymnasium.Env):
    """Deterministic toy env: obs = [steps taken, reset seed (-1 if None)], reward = action[0].

    Episodes seeded with ``crash_seed`` raise, ``hang_seed`` sleep for 1000 s, and ``exit_seed``
    kill the process, all at step ``fault_step``; every other episode ends after 5 steps.
    """

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float64)

    def __init__(self, crash_seed=None, hang_seed=None, exit_seed=None, fault_step=FAULT_STEP):
        self.render_mode = "rgb_array"
        self.faults = {crash_seed: "crash", hang_seed: "hang", exit_seed: "exit"}
        self.fault_step = fault_step
        self.t, self.seed = 0, -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.seed = 0, -1 if seed is None else seed
        return np.array([self.t, self.seed], np.float64), {}

    def step(self, action):
        self.t += 1
        fault = self.faults.get(self.seed) if self.t == self.fault_step else None
        if fault == "crash":
            raise RuntimeError(f"boom at step {self.t}")
        if fault == "hang":
            time.sleep(1000)
        if fault == "exit":
            os._exit(3)
        obs = np.array([self.t, self.seed], np.float64)
        return obs, float(action[0]), self.t >= 5, False, {"t": self.t}

    def render(self):
        return np.full((4, 4, 3), self.t, np.uint8)


def make_counting_env(**kwargs) -> CountingEnv:
    return CountingEnv(**kwargs)


def make_broken_env() -> CountingEnv:
    raise ValueError("no display available")


MAKE_FAULTY_ENV = functools.partial(
    make_counting_env, crash_seed=CRASH_SEED, hang_seed=HANG_SEED, exit_seed=EXIT_SEED
)


@pytest.fixture(scope="module")
def pool():
    with EnvPool(MAKE_FAULTY_ENV, n_workers=2, step_timeout_s=STEP_TIMEOUT_S) as p:
        yield p


def act(value: float) -> np.ndarray:
    return np.array([value])


def assert_obs(obs, t: int, seed: int) -> None:
    assert not isinstance(obs, EnvFault), obs
    np.testing.assert_array_equal(obs, [t, seed])


def test_reset_and_step_are_per_slot(pool):
    obs = pool.reset_many({0: 3, 1: 4})
    assert_obs(obs[0], 0, 3)
    assert_obs(obs[1], 0, 4)
    out = pool.step_many({0: act(0.5), 1: act(0.25)})
    assert_obs(out[0][0], 1, 3)
    assert out[0][1:4] == (0.5, False, False) and out[0][4] == {"t": 1}
    assert_obs(out[1][0], 1, 4)
    assert out[1][1] == 0.25
    # Stepping one slot leaves the other where it was.
    assert_obs(pool.step_many({0: act(0.0)})[0][0], 2, 3)
    assert_obs(pool.step_many({1: act(0.0)})[1][0], 2, 4)
    assert pool.render(0).shape == (4, 4, 3) and (pool.render(0) == 2).all()
    assert_obs(pool.reset(1, None), 0, -1)


def test_crash_faults_one_slot_and_the_slot_recovers(pool):
    pool.reset_many({0: CRASH_SEED, 1: 4})
    pool.step_many({0: act(0.0), 1: act(0.0)})
    pid_before = pool.pids[0]
    out = pool.step_many({0: act(0.0), 1: act(0.0)})
    fault = out[0]
    assert isinstance(fault, EnvFault)
    assert (fault.slot, fault.seed, fault.kind) == (0, CRASH_SEED, "crash")
    assert fault.message == "RuntimeError: boom at step 2"
    assert "in step" in fault.traceback
    assert_obs(out[1][0], 2, 4)
    assert pool.pids[0] != pid_before  # a fresh worker holds a fresh env
    assert_obs(pool.reset(0, 5), 0, 5)
    assert_obs(pool.step_many({0: act(0.0)})[0][0], 1, 5)


def test_hang_times_out_and_the_slot_recovers(pool):
    pool.reset_many({0: 3, 1: HANG_SEED})
    pool.step_many({0: act(0.0), 1: act(0.0)})
    start = time.monotonic()
    out = pool.step_many({0: act(0.0), 1: act(0.0)})
    elapsed = time.monotonic() - start
    assert 0.9 * STEP_TIMEOUT_S <= elapsed < STEP_TIMEOUT_S + 1.5
    assert isinstance(out[1], EnvFault)
    assert (out[1].kind, out[1].seed) == ("timeout", HANG_SEED)
    assert_obs(out[0][0], 2, 3)
    assert_obs(pool.reset(1, 6), 0, 6)
    assert_obs(pool.step_many({1: act(0.0)})[1][0], 1, 6)


def test_dead_worker_is_a_crash_with_its_exit_code(pool):
    pool.reset_many({0: EXIT_SEED, 1: 4})
    pool.step_many({0: act(0.0), 1: act(0.0)})
    out = pool.step_many({0: act(0.0), 1: act(0.0)})
    assert isinstance(out[0], EnvFault) and out[0].kind == "crash"
    assert "exit code 3" in out[0].message
    assert_obs(out[1][0], 2, 4)
    assert_obs(pool.reset(0, 1), 0, 1)


def test_unknown_slot_raises_before_anything_is_sent(pool):
    assert_obs(pool.reset(0, 2), 0, 2)
    with pytest.raises(IndexError):
        pool.step_many({0: act(0.0), 2: act(0.0)})
    assert_obs(pool.step_many({0: act(0.0)})[0][0], 1, 2)  # slot 0 was not stepped, nor desynced


def test_make_env_error_is_a_crash():
    with EnvPool(make_broken_env, n_workers=1, step_timeout_s=5.0) as p:
        fault = p.reset(0, 0)
    assert isinstance(fault, EnvFault) and fault.kind == "crash"
    assert fault.message == "ValueError: no display available"


def live_worker_pids() -> set[int]:
    """Pids of pool workers alive in this process (active_children also reaps finished ones)."""
    return {p.pid for p in multiprocessing.active_children() if p.name.startswith("EnvPool")}


def test_unpicklable_make_env_raises_and_leaves_no_workers():
    before = live_worker_pids()
    with pytest.raises(Exception, match="pickle|Can't get local|lambda"):
        EnvPool(lambda: CountingEnv(), n_workers=2)
    assert live_worker_pids() == before


def test_close_reaps_every_worker_including_replaced_ones():
    pool = EnvPool(MAKE_FAULTY_ENV, n_workers=2, step_timeout_s=STEP_TIMEOUT_S)
    pids = set(pool.pids)
    pool.reset_many({0: CRASH_SEED, 1: 3})
    pool.step_many({0: act(0.0), 1: act(0.0)})
    assert isinstance(pool.step_many({0: act(0.0)})[0], EnvFault)
    pids |= set(pool.pids)
    assert len(pids) == 3
    pool.close()
    pool.close()  # idempotent
    for pid in pids:
        # Already reaped: no live child and no zombie left with this pid.
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert not pids & live_worker_pids()
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset(0, 0)
