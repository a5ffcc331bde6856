"""Batch-1 chunk latency of the exported ONNX graph (onnxruntime) against torch, on the CPU.

    python benchmarks/export_latency.py --checkpoint data/pretrained/push_t --steps 1 8 \
        --out docs/results/export_latency.json

For each step budget: export (timed, file size), parity on the timing inputs, then median / p95 /
p99 ms over ``--calls`` calls after ``--warmup``, one thread each (torch intra-op threads,
onnxruntime intra- and inter-op threads). Both sides are called from numpy with their input
checks (``ShortcutPolicy.predict_action_chunk`` and ``OnnxPolicy.predict_action_chunk``); the
bare ``InferenceSession.run`` is timed too. The calls alternate torch / onnxruntime so that both
see the same machine state. Inputs: random observations uniform over the training range.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.deploy.onnx_export import OnnxPolicy, example_inputs, export_policy, parity
from shortcut_policy.evaluation.latency import summarize_ms


def alternating_ms(calls: dict, n_calls: int, warmup: int) -> dict[str, np.ndarray]:
    """``{name: ms per call}`` for each zero-argument callable, called in turn ``n_calls`` times
    after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times = {name: [] for name in calls}
    for _ in range(n_calls):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: np.asarray(values) * 1000.0 for name, values in times.items()}


def bench_budget(policy: ShortcutPolicy, steps: int, folder: Path, args) -> dict:
    """Export ``policy`` at ``steps`` passes into ``folder`` and time both runtimes."""
    report = export_policy(policy, folder / f"steps{steps}.onnx", steps, check=False)
    runner = OnnxPolicy(report.path, threads=1)
    obs, noise = example_inputs(policy, batch=1, seed=args.seed)
    feed = {**runner.checked_obs(obs), "noise": noise}
    times = alternating_ms(
        {
            "torch": lambda: policy.predict_action_chunk(obs, steps=steps, noise=noise),
            "onnxruntime": lambda: runner.predict_action_chunk(obs, noise),
            "onnxruntime_session_run": lambda: runner.session.run(["action"], feed),
        },
        args.calls,
        args.warmup,
    )
    diff, diff_normalized = parity(policy, report.path, steps, batch=1, seed=args.seed)
    row = {
        "steps": steps,
        "file_mb": round(report.size_mb, 2),
        "nodes": report.nodes,
        "opset": report.opset,
        "export_s": round(report.export_s, 1),
        "parity_max_abs_diff": diff,
        "parity_max_abs_diff_normalized": diff_normalized,
        **{name: summarize_ms(values) for name, values in times.items()},
    }
    row["speedup_median"] = row["torch"]["median_ms"] / row["onnxruntime"]["median_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/pretrained/push_t")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="stated in the JSON (e.g. the machine's load)")
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = ShortcutPolicy.from_pretrained(args.checkpoint, device="cpu")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        rows = [bench_budget(policy, steps, Path(folder), args) for steps in args.steps]
    result = {
        "checkpoint": args.checkpoint,
        "task": policy.spec["task"],
        "objective": policy.objective.name,
        "train_step": policy.meta.get("step"),
        "batch": 1,
        "threads": 1,
        "calls": args.calls,
        "warmup": args.warmup,
        "inputs": f"random observations uniform over the training range, seed {args.seed}",
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "note": args.note,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "budgets": rows,
    }
    print("| steps | file MB | torch median / p99 ms | onnxruntime median / p99 ms | x | diff |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        torch_ms, ort_ms = row["torch"], row["onnxruntime"]
        print(
            f"| {row['steps']} | {row['file_mb']:.1f} | {torch_ms['median_ms']:.2f} / "
            f"{torch_ms['p99_ms']:.2f} | {ort_ms['median_ms']:.2f} / {ort_ms['p99_ms']:.2f} | "
            f"{row['speedup_median']:.2f} | {row['parity_max_abs_diff']:.2g} |"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
