"""Every command-line loader refuses a bad checkpoint in one line and exit status 2.

Run as a user would, in a subprocess: no traceback may reach the terminal.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shortcut_policy.checkpoints.files import load_checkpoint, read_meta, save_checkpoint
from tests.conftest import tiny_bimodal_run

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "push_t"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=180
    )


def assert_one_line_refusal(done: subprocess.CompletedProcess, program: str, words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"[{program}] error:")]
    assert len(lines) == 1 and words in lines[0], done.stderr


def bad_files(tmp_path: Path) -> dict[str, Path]:
    shipped = (SHIPPED / "policy.safetensors").read_bytes()
    files = {
        "empty": b"",
        "truncated": shipped[:300],
        "pickle": b"\x80\x04\x95" + b"\x00" * 64,
    }
    for name, data in files.items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
    return {name: tmp_path / f"{name}.safetensors" for name in files}


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("empty", "truncated or corrupt"),
        ("truncated", "truncated or corrupt"),
        ("pickle", "pickle or zip"),
    ],
)
def test_sample_images_refuses_a_damaged_or_foreign_file_in_one_line(tmp_path, kind, words):
    path = bad_files(tmp_path)[kind]
    done = run_cli("shortcut_policy.sample_images", "--checkpoint", str(path), "--out", "x")
    assert_one_line_refusal(done, "sample_images", words)


def test_sample_images_refuses_a_policy_that_is_not_an_image_model(tmp_path):
    done = run_cli("shortcut_policy.sample_images", "--checkpoint", str(SHIPPED), "--out", "x")
    assert_one_line_refusal(done, "sample_images", "not an image model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny bimodal run (3 steps) and its store, copied by each test that plants a file."""
    return tiny_bimodal_run(tmp_path_factory.mktemp("trained")).parent


def copy_of(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("drop", "words"),
    [("config", "'config' (model and objective) is missing"), ("optimizer", "'optimizer'")],
)
def test_train_resume_refuses_a_planted_checkpoint_without_its_config(
    trained, tmp_path, drop, words
):
    run = copy_of(trained, tmp_path)
    tensors, meta = load_checkpoint(run / "checkpoints" / "step_00000003.safetensors")
    del meta[drop]
    save_checkpoint(run / "checkpoints" / "step_00000004.safetensors", tensors, meta)
    done = run_cli(
        "shortcut_policy.train",
        "task=bimodal",
        "model=unet_tiny",
        f"run_dir={run}",
        f"dataset.path={tmp_path / 'bimodal.zarr'}",
        "dataset.generator_args.n_episodes=100",
        "task.n_obs_steps=2",
        "train.steps=6",
        "train.batch_size=16",
        "val_every=0",
        "logging.mode=disabled",
        "resume=true",
    )
    assert_one_line_refusal(done, "train", words)
    assert read_meta(run / "checkpoints" / "step_00000003.safetensors")["step"] == 3


def test_resume_refuses_tensors_that_do_not_fit_the_network(trained, tmp_path):
    from shortcut_policy.checkpoints.files import CheckpointError
    from shortcut_policy.train import build_run
    from shortcut_policy.training.run_state import restore_run
    from tests.conftest import quick_run

    run_dir = copy_of(trained, tmp_path)
    path = run_dir / "checkpoints" / "step_00000003.safetensors"
    tensors, meta = load_checkpoint(path)
    tensors = {k: torch.zeros(1) if k.startswith("model.") else v for k, v in tensors.items()}
    save_checkpoint(path, tensors, meta)
    cfg = quick_run(
        tmp_path,
        f"dataset.path={tmp_path / 'bimodal.zarr'}",
        "dataset.generator_args.n_episodes=100",
        "task.n_obs_steps=2",
        "train.batch_size=16",
    )
    with pytest.raises(CheckpointError, match="do not fit this run's network"):
        restore_run(build_run(cfg), path)
