"""GPU figures in one short run: chunk latency at batch 1 (eager, CUDA graphs, torch.compile),
DDPM-100 latency, throughput at batch 64 and 256, and bf16 training speed with and without the
dataset in device memory. Run by ``benchmarks/gpu_check.sh`` (≤ 8 minutes).

    python benchmarks/gpu_check.py --out gpu_check.json            # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick --out x.json   # the same code on a CPU

Latency: median / p95 / p99 over ``--calls`` timed calls after warm-up, the device synchronised
around each call; the shipped Push-T policy (``data/pretrained/push_t``). DDPM-100 runs the
same network with Diffusion Policy's sampler (100 passes): latency does not depend on the
weights. ``--quick`` compiles with the ``aot_eager`` backend (dynamo's tracing without code
generation, seconds instead of minutes on a CPU); the full check uses inductor.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.evaluation.latency import summarize_ms
from shortcut_policy.objectives import build_objective
from shortcut_policy.policy.timing import timed_ms

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "pretrained" / "push_t"


def chunk_figures(device: str, graph: bool, budgets: list[int], calls: int) -> dict:
    """Batch-1 latency per budget and batched throughput (chunks/s) at 1 pass."""
    policy = ShortcutPolicy.from_pretrained(SHIPPED, device, cuda_graph=graph)
    one = policy.example_batch(1)
    rows = {"latency_ms": {}, "throughput_chunks_per_s": {}}
    for steps in budgets:
        call = functools.partial(policy.predict_action_chunk, one, steps)
        rows["latency_ms"][steps] = summarize_ms(timed_ms(call, policy.device, calls, 20))
    for batch in (64, 256):
        many = policy.example_batch(batch)
        call = functools.partial(policy.predict_action_chunk, many, 1)
        median_ms = float(np.median(timed_ms(call, policy.device, 20, 5)))
        rows["throughput_chunks_per_s"][batch] = batch / (median_ms / 1000.0)
    return rows


def compiled_figures(device: str, backend: str, calls: int) -> dict:
    """Batch-1, 1-pass latency with the observation-to-action path under ``torch.compile``."""
    policy = ShortcutPolicy.from_pretrained(SHIPPED, device)
    policy.network.act = torch.compile(policy.network.act, backend=backend, dynamic=False)
    call = functools.partial(policy.predict_action_chunk, policy.example_batch(1), 1)
    start = time.perf_counter()
    call()  # compiles
    compile_s = time.perf_counter() - start
    return {
        "backend": backend,
        "compile_s": compile_s,
        "latency_ms": {1: summarize_ms(timed_ms(call, policy.device, calls, 5))},
    }


def ddpm_latency(device: str, graph: bool, calls: int) -> dict:
    """Batch-1 latency of a DDPM-100 chunk (Diffusion Policy's 100 ancestral passes)."""
    shipped = ShortcutPolicy.from_pretrained(SHIPPED, device)
    ddpm = build_objective({"name": "ddpm", "train_steps": 100, "default_steps": 100})
    policy = ShortcutPolicy(shipped.network, ddpm, shipped.meta, device=device, cuda_graph=graph)
    call = functools.partial(policy.predict_action_chunk, policy.example_batch(1), 100)
    return {100: summarize_ms(timed_ms(call, policy.device, calls, 2))}


def training_speed(
    device: str, steps: int, batch: int | None, model: str, on_device: bool, dataset: str
) -> dict:
    """Steps per second of a short bf16 Push-T training run (``batch`` rows a step; None: the
    task's own batch); ``on_device``: the training set in device memory
    (``train.device_data=true``) instead of a loader."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "shortcut_policy.train",
            "task=push_t",
            f"dataset.path={Path(dataset).resolve()}",
            f"model={model}",
            f"train.device_data={str(on_device).lower()}",
            f"device={device}",
            "train.precision=bf16",
            f"train.steps={steps}",
            *([f"train.batch_size={batch}"] if batch else []),
            f"run_dir={tmp}/run",
            "val_every=0",
            "eval_every=0",
            f"checkpoint_every={steps}",
            "logging.mode=disabled",
            "logging.progress=false",
        ]
        start = time.time()
        subprocess.run(command, cwd=ROOT, check=True)
        lines = Path(tmp, "run", "metrics.jsonl").read_text().splitlines()
        speeds = [json.loads(line)["steps_per_s"] for line in lines if "steps_per_s" in line]
    return {
        "model": model,
        "device_data": on_device,
        "steps": steps,
        "batch_size": batch or "the task's",
        "steps_per_s_last": speeds[-1],
        "wall_s": time.time() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="few calls and steps (smoke run)")
    parser.add_argument("--dataset", default=str(ROOT / "data" / "push_t.zarr"))
    args = parser.parse_args()
    calls, train_steps = (10, 6) if args.quick else (args.calls, args.train_steps)
    # A CPU without native bf16 emulates it: batch 256 would spend a minute on a smoke run.
    batch = 16 if args.quick else None
    budgets = [1, 8] if args.quick else [1, 8, 128]
    cuda = args.device == "cuda"
    if not cuda:
        torch.set_num_threads(1)  # a shared CPU: all threads would wait on each other
    report = {
        "device": torch.cuda.get_device_name() if cuda else args.device,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "eager": chunk_figures(args.device, False, budgets, calls),
    }
    print(json.dumps(report, indent=1), flush=True)
    # CUDA graphs exist only on CUDA; the run on a CPU says so instead of timing them.
    report["graph"] = chunk_figures(args.device, True, budgets, calls) if cuda else None
    backend = "aot_eager" if args.quick else "inductor"
    report["compiled"] = compiled_figures(args.device, backend, calls)
    report["ddpm_100"] = {
        "eager": ddpm_latency(args.device, False, max(3, calls // 10)),
        "graph": ddpm_latency(args.device, True, max(3, calls // 10)) if cuda else None,
    }
    print(json.dumps(report, indent=1), flush=True)
    # Diffusion Policy's network size only where there is a GPU to train it.
    models = ["unet_small", "unet_dp"] if cuda else ["unet_small"]
    report["train_bf16"] = [
        training_speed(args.device, train_steps, batch, model, on_device, args.dataset)
        for model in models
        for on_device in (False, True)
    ]
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
