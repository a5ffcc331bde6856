"""Shared fixtures: fixed seeds, few threads, and a hydra config composer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
# A trained Push-T shortcut policy (the one shipped before MeanFlow): fixtures/README.md.
SHORTCUT_POLICY = Path(__file__).resolve().parent / "fixtures" / "push_t_shortcut"
# The test networks are small: one thread is fastest and avoids contention on 2-core machines.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_config(*overrides: str, config_name: str = "train"):
    """The resolved ``config_name`` config (train, rollout, ...) for ``overrides`` (as on the
    command line)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def quick_run(tmp_path: Path, *overrides: str, task: str = "bimodal"):
    """Config of a short CPU training run in ``tmp_path`` (tiny network, no logging)."""
    return make_config(
        f"task={task}",
        "model=unet_tiny",
        f"run_dir={tmp_path / 'run'}",
        "val_every=0",
        "logging.mode=disabled",
        "logging.progress=false",
        "device=cpu",
        *overrides,
    )


def tiny_bimodal_run(tmp_path: Path, *overrides: str) -> Path:
    """A tiny bimodal policy trained for 3 steps (n_obs_steps 2); returns its run folder."""
    from shortcut_policy.train import train

    train(
        quick_run(
            tmp_path,
            f"dataset.path={tmp_path / 'bimodal.zarr'}",
            "dataset.generator_args.n_episodes=100",
            "task.n_obs_steps=2",
            "train.steps=3",
            "train.batch_size=16",
            "checkpoint_every=3",
            *overrides,
        )
    )
    return tmp_path / "run"
