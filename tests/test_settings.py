import subprocess
import sys

import pytest

from shortcut_policy.train import train
from shortcut_policy.training.logger import logging_mode
from shortcut_policy.training.settings import ConfigError, check_train_config
from tests.conftest import make_config, quick_run


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_size=0", r"train.batch_size=0 must be an integer >= 1"),
        ("train.steps=-1", r"train.steps=-1 must be an integer >= 1"),
        ("train.steps=abc", r"train.steps='abc' must be an integer >= 1"),
        ("train.steps=2.5", r"train.steps=2.5 must be an integer"),
        ("checkpoint_every=-5", r"checkpoint_every=-5 must be an integer >= 1"),
        ("train.lr=0", r"train.lr=0 must be a number >= 1e-12"),
        ("train.ema_decay=1.0", r"train.ema_decay=1.0 must be a number in \[0, 1\)"),
        ("train.betas=[0.9]", r"train.betas=\[0.9\] must be a list of two numbers"),
        ("eval_steps=[1,0]", r"eval_steps=\[1, 0\] every entry must be an integer >= 1"),
        ("train.precision=fp16", r"train.precision='fp16' must be one of"),
        ("resume=maybe", r"resume='maybe' must be true or false"),
        ("logging.mode=loud", r"logging.mode='loud' must be one of"),
    ],
)
def test_bad_settings_are_named_before_anything_is_created(tmp_path, override, message):
    cfg = quick_run(tmp_path, override)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_every_problem_is_listed_at_once():
    cfg = make_config("train.batch_size=0", "train.steps=-1", "val_batches=0")
    with pytest.raises(ConfigError) as err:
        check_train_config(cfg)
    assert all(p in str(err.value) for p in ("batch_size", "train.steps", "val_batches"))


def test_the_shipped_configs_pass():
    for task in ("push_t", "push_t_image", "bimodal", "digits", "can", "square", "zarr"):
        check_train_config(make_config(f"task={task}"))


def test_the_command_line_refuses_a_bad_value_without_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shortcut_policy.train",
            "task=bimodal",
            "train.steps=abc",
            f"run_dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "train.steps='abc' must be an integer >= 1" in done.stderr
    assert not run_dir.exists()


def test_wandb_mode_from_the_environment_unless_the_config_sets_one(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert logging_mode(None) == "disabled"
    assert logging_mode("offline") == "offline"
    monkeypatch.delenv("WANDB_MODE")
    assert logging_mode(None) == "offline"


def test_rollout_refuses_a_zero_budget_before_running_anything(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shortcut_policy.rollout",
            "steps=[1,0]",
            "n_episodes=1",
            f"out_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "[rollout] error: steps (network passes per sample) must be an integer" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_evaluation_budget_the_objective_cannot_take_is_refused_first(tmp_path):
    cfg = quick_run(tmp_path, "eval_steps=[1,256]")
    with pytest.raises(ValueError, match=r"integer in \[1, 128\] for a shortcut model, got 256"):
        train(cfg)
    assert not (tmp_path / "run").exists()
