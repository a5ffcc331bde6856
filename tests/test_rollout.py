import functools
import json
import os
import signal
import time

import numpy as np
import pytest

from envs.push_t.policy_env import make_policy_env
from shortcut_policy import ShortcutPolicy
from shortcut_policy.evaluation.env_pool import EnvPool
from shortcut_policy.evaluation.episodes import run_episodes
from shortcut_policy.rollout import rollout
from shortcut_policy.train import train
from tests.conftest import CONFIG_DIR, SHORTCUT_POLICY, make_config, quick_run


def fake_push_t_store(path):
    """Two short Push-T-shaped episodes (random but finite), enough to build a policy."""
    from shortcut_policy.data.replay_buffer import ReplayBuffer

    rng = np.random.default_rng(0)
    episodes = [
        {
            "state": rng.uniform(0, 512, (24, 5)).astype(np.float32),
            "keypoint": rng.uniform(0, 512, (24, 8, 2)).astype(np.float32),
            "action": rng.uniform(0, 512, (24, 2)).astype(np.float32),
        }
        for _ in range(3)
    ]
    ReplayBuffer.from_episodes(episodes).save(path)


@pytest.fixture(scope="module")
def push_t_policy_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rollout")
    fake_push_t_store(tmp / "pt.zarr")
    cfg = quick_run(
        tmp,
        "model.down_dims=[16,32]",
        f"dataset.path={tmp / 'pt.zarr'}",
        "dataset.val_fraction=0",
        "train.steps=2",
        "train.batch_size=8",
        "checkpoint_every=2",
        task="push_t",
    )
    train(cfg)
    return tmp / "run"


def test_rollout_with_two_workers_writes_every_field(push_t_policy_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(
            config_name="rollout",
            overrides=[
                f"checkpoint={push_t_policy_dir}",
                "steps=[1,2]",
                "n_episodes=3",
                "workers=2",
                "task.env.max_steps=15",
                "latency_calls=5",
                "throughput_batch=4",
                "progress=false",
                "videos=1",
                "device=cpu",
                f"out_dir={tmp_path}",
            ],
        )
    report = rollout(cfg)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["budgets"][0]["steps"] == 1 and saved["budgets"][1]["steps"] == 2
    for row in saved["budgets"]:
        for key in (
            "success_rate",
            "success_ci95",
            "mean_score",
            "score_ci95",
            "latency",
            "latency_x_forward",
            "throughput_chunks_per_s",
            "faults",
            "episodes",
        ):
            assert key in row, key
        assert set(row["latency"]) == {"median_ms", "p95_ms", "p99_ms"}
        assert [e["seed"] for e in row["episodes"]] == [100000, 100001, 100002]
        assert all(e["length"] == 15 for e in row["episodes"])
    assert report["forward_latency"]["median_ms"] > 0
    assert (tmp_path / "success_vs_latency.png").stat().st_size > 0
    assert (tmp_path / "steps1_seed100000.mp4").stat().st_size > 0
    assert "| steps |" in (tmp_path / "report.md").read_text()


class FaultyPushT:
    """Crashes on seed 100001 at step 3 and hangs on seed 100002 at step 2."""

    def __init__(self):
        self.env = make_policy_env(max_steps=10)

    def reset(self, seed=None, options=None):
        self.seed, self.t = seed, 0
        return self.env.reset(seed=seed)

    def step(self, action):
        self.t += 1
        if self.seed == 100001 and self.t == 3:
            raise RuntimeError("simulator exploded")
        if self.seed == 100002 and self.t == 2:
            time.sleep(1000)
        if self.seed == 100004 and self.t == 4:
            obs, *rest = self.env.step(action)
            return {key: np.full_like(value, np.nan) for key, value in obs.items()}, *rest
        if self.seed == 100005 and self.t == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.env.step(action)

    def close(self):
        self.env.close()


def make_faulty_env():
    return FaultyPushT()


class HugeStatePushT(FaultyPushT):
    """Seed 2 starts from an absurd (finite) state."""

    def reset(self, seed=None, options=None):
        obs, info = super().reset(seed, options)
        if seed == 2:
            obs = {**obs, "state": np.full_like(obs["state"], 1e30)}
        return obs, info


def make_huge_state_env():
    return HugeStatePushT()


def test_crashing_and_hanging_environments_do_not_stop_the_evaluation(push_t_policy_dir):
    policy = ShortcutPolicy.from_pretrained(push_t_policy_dir, device="cpu")
    seeds = [100000, 100001, 100002, 100003, 100004, 100005]
    with EnvPool(functools.partial(make_faulty_env), 2, step_timeout_s=2.0) as pool:
        results = run_episodes(policy, pool, seeds, steps=1)
    assert [r.seed for r in results] == seeds
    assert "simulator exploded" in results[1].fault and not results[1].success
    assert results[2].fault.startswith("timeout")
    assert results[0].fault is None and results[0].length == 10
    assert results[3].fault is None and results[3].length == 10
    # A NaN observation fails that episode alone, with its reason.
    assert results[4].fault.startswith("bad observation at step 4") and "NaN" in results[4].fault
    assert "worker died (killed by SIGKILL)" in results[5].fault


def test_non_finite_actions_fail_only_their_episode(push_t_policy_dir):
    policy = ShortcutPolicy.from_pretrained(push_t_policy_dir, device="cpu")
    real = policy.predict_action_chunk

    def nan_for_huge_state(batch, steps=None):
        chunk = real(batch, steps)
        chunk[batch["state"][:, -1, 0] > 1e6] = np.nan  # as a blown-up network would give
        from shortcut_policy.policy.obs_check import finite_actions

        return finite_actions(chunk)

    policy.predict_action_chunk = nan_for_huge_state
    with EnvPool(functools.partial(make_huge_state_env), 2, step_timeout_s=5.0) as pool:
        results = run_episodes(policy, pool, [1, 2, 3], steps=1)
    assert results[1].fault.startswith("policy at step 0") and "NaN or infinite" in results[1].fault
    assert results[0].fault is None and results[2].fault is None


def test_training_evaluates_in_the_simulator_and_keeps_best_and_last(tmp_path):
    fake_push_t_store(tmp_path / "pt.zarr")
    cfg = quick_run(
        tmp_path,
        "model.down_dims=[16,32]",
        f"dataset.path={tmp_path / 'pt.zarr'}",
        "dataset.val_fraction=0",
        "task.env.max_steps=5",
        "train.steps=2",
        "train.batch_size=8",
        "eval_every=1",
        "eval_steps=[1]",
        "checkpoint_every=2",
        task="push_t",
    )
    train(cfg)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert all("eval/score@1" in row and "eval/success@1" in row for row in rows)
    from shortcut_policy.checkpoints.files import read_meta

    best = read_meta(tmp_path / "run" / "checkpoints" / "best.safetensors")
    last = read_meta(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert best["label"] == "best" and best["best_metric"] == "eval/score@1"
    assert best["best_value"] == max(row["eval/score@1"] for row in rows)
    assert last["label"] == "last" and last["step"] == 2


class AlwaysFailingReset:
    def reset(self, seed=None, options=None):
        raise RuntimeError("no simulator here")

    def close(self):
        pass


def make_broken_env():
    return AlwaysFailingReset()


def test_evaluation_finishes_when_every_reset_fails(push_t_policy_dir):
    policy = ShortcutPolicy.from_pretrained(push_t_policy_dir, device="cpu")
    with EnvPool(functools.partial(make_broken_env), 1, step_timeout_s=5.0) as pool:
        results = run_episodes(policy, pool, [1, 2, 3], steps=1)
    assert [r.seed for r in results] == [1, 2, 3]
    assert all("no simulator here" in r.fault for r in results)


def test_rollout_under_torchrun_shards_episodes_into_one_report(push_t_policy_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(CONFIG_DIR).parent
    args = [
        f"checkpoint={push_t_policy_dir}",
        "steps=[1]",
        "n_episodes=5",
        "workers=1",
        "task.env.max_steps=10",
        "latency_calls=5",
        "throughput_batch=4",
        "progress=false",
        "device=cpu",
        f"out_dir={tmp_path}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        + ["-m", "shortcut_policy.rollout", *args],
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["processes"] == 2
    (row,) = report["budgets"]
    assert [e["seed"] for e in row["episodes"]] == list(range(100000, 100005))
    assert row["n_episodes"] == 5 and all(e["length"] == 10 for e in row["episodes"])
    assert row["latency"]["median_ms"] > 0 and row["latency_x_forward"] > 0


def test_rollout_with_steps_auto_evaluates_the_budget_that_fits(
    push_t_policy_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(ShortcutPolicy, "chunk_p99_ms", lambda self, steps: 3.0 * steps)
    cfg = make_config(
        f"checkpoint={push_t_policy_dir}",
        "steps=auto",
        "deadline_ms=30",
        "n_episodes=2",
        "workers=1",
        "task.env.max_steps=10",
        "latency_calls=3",
        "throughput_batch=2",
        "progress=false",
        "device=cpu",
        f"out_dir={tmp_path}",
        config_name="rollout",
    )
    report = rollout(cfg)
    assert [row["steps"] for row in report["budgets"]] == [8]  # 24 ms; 16 passes take 48
    assert report["budget_choice"]["p99_ms"] == {1: 3.0, 2: 6.0, 4: 12.0, 8: 24.0, 16: 48.0}


def test_a_delayed_noisy_rollout_reports_its_joins_and_repeats_exactly():
    from shortcut_policy.evaluation.episodes import Execution

    policy = ShortcutPolicy.from_pretrained("data/pretrained/push_t", steps=1)
    late = Execution(delay=3, action_noise=5.0)
    runs = []
    for _ in range(2):
        policy.seed(0)
        with EnvPool(functools.partial(make_policy_env, max_steps=40), 1) as pool:
            runs.append(run_episodes(policy, pool, [100000, 100001], 1, execution=late))
    first, again = runs
    assert [(r.score, r.joins) for r in first] == [(r.score, r.joins) for r in again]
    for result in first:
        assert result.joins["boundary_ratio"] > 0 and result.joins["jerk"] > 0
        assert result.joins["prefix_error"] > 0  # the new plan differs from what was committed


def test_a_warm_join_continues_the_committed_plan_more_closely_than_none():
    from shortcut_policy.evaluation.episodes import Execution

    errors = {}
    for join in ("none", "warm"):
        policy = ShortcutPolicy.from_pretrained(SHORTCUT_POLICY, steps=1, join=join)
        policy.seed(0)
        with EnvPool(functools.partial(make_policy_env, max_steps=80), 1) as pool:
            late = Execution(delay=3, join=join)
            results = run_episodes(policy, pool, [100000, 100001, 100002], 1, execution=late)
        errors[join] = sum(r.joins["prefix_error"] for r in results)
    # warm_t = 0.5 on the shortcut policy: about 0.8x the prefix error of 'none' (8 episodes).
    assert errors["warm"] < 0.9 * errors["none"], errors


@pytest.mark.parametrize(
    "overrides, error",
    [
        (["delay=8"], "lower execute or delay"),
        (["join=prefix"], "needs a policy trained with prefix conditioning"),
        (["join=warm", "warm_t=1.0"], "warm_t is where a warm sample starts"),
    ],
)
def test_an_execution_the_policy_cannot_run_is_refused_before_any_episode(
    push_t_policy_dir, overrides, error
):
    from shortcut_policy.training.settings import ConfigError

    cfg = make_config(
        f"checkpoint={push_t_policy_dir}", *overrides, "device=cpu", config_name="rollout"
    )
    with pytest.raises(ConfigError, match=error):
        rollout(cfg)
