"""The bimodal claim through the whole pipeline: train each objective, count where samples land.

    python benchmarks/bimodal.py            # ~15 min on 2 CPU cores

Trains ``task=bimodal model=unet_tiny`` with ``objective=shortcut|flow|ddpm`` (same data, network,
steps, batch and seed) through ``python -m shortcut_policy.train`` (resumable: rerunning continues
unfinished runs), then samples 512 chunks per step budget from the final EMA weights and reports
the fraction passing near a mode (within A/4 of the left or right path) and through the gap.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from shortcut_policy.checkpoint import latest_checkpoint
from shortcut_policy.evaluators import evaluate_bimodal
from shortcut_policy.pretrained import load_policy_network

BUDGETS = {"shortcut": [1, 2, 4, 8, 128], "flow": [1, 2, 4, 8, 128], "ddpm": [1, 2, 4, 8, 100]}


def train(objective: str, steps: int, root: Path) -> Path:
    run_dir = root / objective
    done = latest_checkpoint(run_dir / "checkpoints")
    if done is None or not done.name.endswith(f"{steps:08d}.safetensors"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "shortcut_policy.train",
                "task=bimodal",
                "model=unet_tiny",
                f"objective={objective}",
                f"train.steps={steps}",
                f"run_dir={run_dir}",
                f"resume={done is not None}",
                "eval_every=0",
                "logging.mode=disabled",
            ],
            check=True,
        )
    return latest_checkpoint(run_dir / "checkpoints")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--root", default="runs/bench_bimodal")
    parser.add_argument("--out", default="docs/results/bimodal.json")
    parser.add_argument("--objectives", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    args = parser.parse_args()
    results = {}
    for objective in args.objectives:
        budgets = BUDGETS[objective]
        network, obj, _ = load_policy_network(train(objective, args.steps, Path(args.root)))
        results[objective] = evaluate_bimodal(network, obj, None, budgets)
    print("| objective | steps | near a mode | in the gap |")
    print("|---|---|---|---|")
    for objective in args.objectives:
        for steps in BUDGETS[objective]:
            row = results[objective]
            print(
                f"| {objective} | {steps} | {row[f'near_mode@{steps}']:.2f} "
                f"| {row[f'in_gap@{steps}']:.2f} |"
            )
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
