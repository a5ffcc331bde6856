"""Training-data throughput: samples per second from the store, with and without camera frames.

    python benchmarks/data_throughput.py --tasks push_t push_t_image --workers 0 1 2
    python benchmarks/data_throughput.py --tasks push_t --device-data   # + the set in memory

For each task and number of loader worker processes, times ``--batches`` batches of
``--batch-size`` windows drawn in training order (after ``--warmup`` batches), and, for
comparison, the training step of the task's default network at the same batch size: the loader
keeps up when it delivers more samples per second than the step consumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from shortcut_policy.models import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.tasks import CONFIG_DIR, load_task_data
from shortcut_policy.training.batches import StepBatchSampler
from shortcut_policy.training.device_batches import DeviceBatches
from shortcut_policy.training.loss_module import ObjectiveLoss


def make_config(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="train", overrides=list(overrides))


def loader_rate(dataset, batch_size: int, workers: int, batches: int, warmup: int) -> float:
    """Samples per second delivered by a ``DataLoader`` with ``workers`` processes."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers)
    stream = iter(loader)
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch_size / (time.perf_counter() - start)


def device_rate(dataset, batch_size: int, batches: int, warmup: int) -> float:
    """Samples per second drawn from the set stacked in (here: CPU) memory, as
    ``train.device_data=true`` draws them; the one-off stacking is not counted."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed=0)
    stream = iter(DeviceBatches(dataset, sampler, torch.device("cpu")))
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch_size / (time.perf_counter() - start)


def train_step_rate(cfg, data, batch_size: int, steps: int) -> float:
    """Samples per second consumed by forward + backward + optimizer step of the network."""
    network = build_network(data.spec, cfg.model, data.normalizer).train()
    loss_fn = ObjectiveLoss(network, build_objective(cfg.objective))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    batch = next(iter(DataLoader(data.train, batch_size=batch_size, shuffle=True)))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss, _ = loss_fn(batch, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch_size / (sum(times[1:]) / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["push_t", "push_t_image"])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device-data", action="store_true", help="also train.device_data")
    parser.add_argument("--out", default="docs/results/data_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for task in args.tasks:
        cfg = make_config(f"task={task}")
        data = load_task_data(cfg.task, cfg.dataset)
        row = {"task": task, "batch_size": args.batch_size, "threads": args.threads}
        for workers in args.workers:
            rate = loader_rate(data.train, args.batch_size, workers, args.batches, args.warmup)
            row[f"loader_samples_per_s@{workers}_workers"] = round(rate, 1)
        if args.device_data:
            rate = device_rate(data.train, args.batch_size, args.batches, args.warmup)
            row["device_data_samples_per_s"] = round(rate, 1)
        rate = train_step_rate(cfg, data, args.batch_size, args.train_steps)
        row["train_step_samples_per_s"] = round(rate, 1)
        row["model"] = cfg.model.name
        print(json.dumps(row))
        rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
