"""Shared by the MuJoCo manipulation tests: train a tiny policy on a store, roll it out."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from shortcut_policy.rollout import rollout
from shortcut_policy.train import train
from tests.conftest import CONFIG_DIR, quick_run


def tiny_policy_rollout(tmp_path: Path, task: str, store: Path, max_steps: int) -> dict:
    """Train 2 steps of a tiny network on ``store``, roll out 2 episodes; the saved report."""
    cfg = quick_run(
        tmp_path,
        "model.down_dims=[16,32]",
        f"dataset.path={store}",
        "dataset.val_fraction=0",
        "train.steps=2",
        "train.batch_size=8",
        "checkpoint_every=2",
        task=task,
    )
    train(cfg)
    out = tmp_path / "rollout"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(
            config_name="rollout",
            overrides=[
                f"task={task}",
                f"checkpoint={tmp_path / 'run'}",
                "steps=[1]",
                "n_episodes=2",
                "workers=1",
                f"task.env.max_steps={max_steps}",
                "latency_calls=3",
                "throughput_batch=2",
                "progress=false",
                "device=cpu",
                f"out_dir={out}",
            ],
        )
    rollout(cfg)
    assert "| steps |" in (out / "report.md").read_text()
    return json.loads((out / "report.json").read_text())
