"""The training set in device memory gives the loader's batches, step for step."""

import json
from itertools import islice

import pytest
import torch
from torch.utils.data import DataLoader

from shortcut_policy.train import build_run, train
from shortcut_policy.training.batches import StepBatchSampler
from shortcut_policy.training.device_batches import DeviceBatches, stacked_bytes
from tests.conftest import quick_run


def small_config(tmp_path, *extra):
    return quick_run(
        tmp_path,
        f"dataset.path={tmp_path / 'bimodal.zarr'}",
        "dataset.generator_args.n_episodes=200",
        "train.steps=6",
        "train.batch_size=32",
        "train.warmup_steps=2",
        "checkpoint_every=3",
        "eval_every=0",
        "logging.log_every=1",
        *extra,
    )


def assert_same_tree(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tree(a[key], b[key])
    else:
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(("start", "rank", "world"), [(0, 0, 1), (5, 1, 2)])
def test_device_batches_equal_the_loaders_across_epochs(tmp_path, start, rank, world):
    data = build_run(small_config(tmp_path)).data.train
    sampler = StepBatchSampler(len(data), 32, seed=3, start_step=start, rank=rank, world=world)
    steps = 2 * sampler.steps_per_epoch + 1  # crosses two epoch boundaries
    loader = DataLoader(data, batch_sampler=sampler)
    device = DeviceBatches(data, sampler, torch.device("cpu"))
    for expected, got in zip(islice(loader, steps), islice(device, steps), strict=True):
        assert_same_tree(expected, got)
    assert stacked_bytes(device.windows) > 0


def test_training_from_device_memory_follows_the_same_curve(tmp_path):
    curves = {}
    for on_device in (False, True):
        run_dir = tmp_path / str(on_device)
        run_dir.mkdir()
        train(small_config(run_dir, f"train.device_data={str(on_device).lower()}"))
        lines = (run_dir / "run" / "metrics.jsonl").read_text().splitlines()
        curves[on_device] = [json.loads(line)["loss"] for line in lines]
    assert len(curves[True]) == 6
    assert curves[True] == pytest.approx(curves[False], rel=1e-6)
