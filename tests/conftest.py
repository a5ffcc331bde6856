"""Shared fixtures: fixed seeds, few threads, and a hydra config composer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
# The test networks are small: one thread is fastest and avoids contention on 2-core machines.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_config(*overrides: str):
    """The resolved training config for ``overrides`` (as on the command line)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="train", overrides=list(overrides))


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
