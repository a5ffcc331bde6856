"""Where a Push-T pixel training step's time goes, and what the cheaper-step options buy.

    python benchmarks/pixel_step.py --threads 1 --out docs/results/pixel_step.json
    python benchmarks/pixel_step.py --variants base bf16 channels_last downsample2

The network is ``task=push_t_image``'s (96 x 96 frames cropped to 84 x 84, the ResNet encoder
with spatial-softmax keypoints shared over the 2-frame history, ``unet_small`` head), fed
random frames of the stored dtype (uint8) at the task's batch (64). Each part is timed on its
own, median of ``--steps`` after warm-up:

* ``augment``: the random crops (on uint8, before any float conversion);
* ``encoder``: frames to features, forward and backward;
* ``head``: the U-Net's flow-matching loss on fixed features, forward and backward;
* ``step``: the whole step (augment, encode, loss, backward, AdamW);
* ``loader``: with ``--store PATH`` (a ``push_t_image`` store), samples/s of the data loader
  (frame decoding and windowing) with the task's one worker process.

Variants change one thing against ``base`` (fp32): ``bf16`` (autocast, as
``train.precision=bf16``), ``channels_last`` (``model.vision.channels_last``), ``downsample2``
(``model.vision.downsample=2``: the crop average-pooled to 42 x 42) and their combinations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.data.normalizer import RangeNormalizer
from shortcut_policy.models.policy_net import PolicyNetwork
from shortcut_policy.objectives import FlowMatching

SPEC = {
    "task": "push_t_image",
    "obs_shapes": {"img": [96, 96, 3], "agent_pos": [2]},
    "obs_types": {"img": "rgb", "agent_pos": "low_dim"},
    "action_dim": 2,
    "horizon": 16,
    "n_obs_steps": 2,
    "action_key": "action",
}
HEAD = {"down_dims": [64, 128, 256], "kernel_size": 5, "embed_dim": 128, "n_groups": 8}
VISION = {
    "channels": [32, 64, 128],
    "pool": "spatial_softmax",
    "keypoints": 32,
    "feature_dim": 64,
    "crop_shape": [84, 84],
}
VARIANTS = {
    "base": ({}, False),
    "bf16": ({}, True),
    "channels_last": ({"channels_last": True}, False),
    "channels_last_bf16": ({"channels_last": True}, True),
    "downsample2": ({"downsample": 2}, False),
    "downsample2_bf16": ({"downsample": 2}, True),
}


def network(vision: dict) -> PolicyNetwork:
    stats = {
        "agent_pos": (np.zeros(2), np.full(2, 512.0)),
        "action": (np.zeros(2), np.full(2, 512.0)),
    }
    return PolicyNetwork(SPEC, {**HEAD, "vision": {**VISION, **vision}}, RangeNormalizer(stats))


def batch(size: int, generator: torch.Generator) -> dict:
    frames = torch.randint(0, 256, (size, 2, 96, 96, 3), dtype=torch.uint8, generator=generator)
    return {
        "obs": {"img": frames, "agent_pos": 512 * torch.rand(size, 2, 2, generator=generator)},
        "action": 512 * torch.rand(size, 16, 2, generator=generator),
    }


def median_s(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_parts(variant: str, size: int, steps: int) -> dict[str, float]:
    """Seconds per call of each part of one training step, for one variant."""
    vision, bf16 = VARIANTS[variant]
    torch.manual_seed(0)
    net = network(vision).train()
    objective = FlowMatching()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    data = batch(size, torch.Generator().manual_seed(0))
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    cropped = net.augment(data)
    cond = net.prepare_batch(cropped)[1].detach()
    x1 = net.normalizer.normalize("action", data["action"])

    def encoder():
        with autocast():
            features = net.encode(cropped["obs"])
        features.float().square().mean().backward()

    def head():
        with autocast():
            loss, _ = objective.loss(net, x1, cond)
        loss.backward()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            x, c = net.prepare_batch(net.augment(data))
            loss, _ = objective.loss(net, x, c)
        loss.backward()
        optimizer.step()

    return {
        "augment": median_s(lambda: net.augment(data), steps),
        "encoder": median_s(encoder, steps),
        "head": median_s(head, steps),
        "step": median_s(step, steps),
    }


def loader_samples_per_s(store: Path, size: int, batches: int) -> float:
    """Samples/s of the task's data loader (one worker) over a real ``push_t_image`` store."""
    from hydra import compose, initialize_config_dir
    from torch.utils.data import DataLoader

    from shortcut_policy.tasks import CONFIG_DIR, load_task_data

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("train", overrides=["task=push_t_image", f"dataset.path={store}"])
    data = load_task_data(cfg.task, cfg.dataset)
    loader = DataLoader(data.train, batch_size=size, shuffle=True, num_workers=1)
    iterator = iter(loader)
    next(iterator)  # the worker's start-up is not the loader's throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--store", type=Path, default=None, help="a push_t_image zarr store")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {v: time_parts(v, args.batch, args.steps) for v in args.variants}
    print("| variant | augment ms | encoder fwd+bwd ms | head fwd+bwd ms | step ms | samples/s |")
    print("|---|---|---|---|---|---|")
    for name, parts in rows.items():
        ms = {key: 1000 * value for key, value in parts.items()}
        print(
            f"| {name} | {ms['augment']:.1f} | {ms['encoder']:.0f} | {ms['head']:.0f} "
            f"| {ms['step']:.0f} | {args.batch / parts['step']:.0f} |"
        )
    result = {"batch": args.batch, "threads": args.threads, "steps": args.steps, "parts_s": rows}
    if args.store is not None:
        result["loader_samples_per_s"] = loader_samples_per_s(args.store, args.batch, 10)
        print(f"loader (1 worker): {result['loader_samples_per_s']:.0f} samples/s")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
