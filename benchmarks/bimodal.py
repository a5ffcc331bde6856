"""The bimodal claim through the whole pipeline: train each objective, count where samples land.

    python benchmarks/bimodal.py            # ~15 min on 2 CPU cores
    python benchmarks/bimodal.py --as-user --steps 2000 --objectives shortcut

``--as-user`` trains the way a user trains their own store: ``task=zarr`` on the same two-mode
store with every setting at the library defaults (batch 256, lr 5e-4, EMA 0.999), not the
bimodal task's tuned ones.

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

from shortcut_policy.checkpoints.files import latest_checkpoint
from shortcut_policy.evaluation.evaluators import evaluate_bimodal
from shortcut_policy.policy.pretrained import load_policy_network

BUDGETS = {
    "shortcut": [1, 2, 4, 8, 128],
    "flow": [1, 2, 4, 8, 128],
    "ddpm": [1, 2, 4, 8, 100],
    "meanflow": [1, 2, 4, 8, 128],
}


# The bimodal task's store, read as any user's zarr store (no bimodal-specific settings).
AS_USER = [
    "task=zarr",
    "dataset.path=data/bimodal_h8.zarr",
    "task.obs_keys=[pos]",
    "task.horizon=8",
    "task.n_obs_steps=1",
    "task.n_action_steps=1",
]


def train(
    objective: str,
    steps: int,
    root: Path,
    as_user: bool = False,
    threads: int = 0,
    overrides: tuple[str, ...] = (),
) -> Path:
    run_dir = root / objective
    done = latest_checkpoint(run_dir / "checkpoints")
    task = AS_USER if as_user else ["task=bimodal"]
    if done is None or not done.name.endswith(f"{steps:08d}.safetensors"):
        subprocess.run(
            [sys.executable, "-m", "shortcut_policy.train", *task, "model=unet_tiny"]
            + [f"objective={objective}", f"train.steps={steps}", f"run_dir={run_dir}"]
            + [f"resume={done is not None}", "eval_every=0", "logging.mode=disabled"]
            + [f"threads={threads}", "logging.progress=false", *overrides],
            check=True,
        )
    return latest_checkpoint(run_dir / "checkpoints")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--root", default="runs/bench_bimodal")
    parser.add_argument("--out", default="docs/results/bimodal.json")
    parser.add_argument("--objectives", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--as-user", action="store_true", help="task=zarr with library defaults")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--overrides", nargs="*", default=[], help="more config, e.g. model.x=y")
    args = parser.parse_args()
    results = {}
    for objective in args.objectives:
        budgets = BUDGETS[objective]
        network, obj, _ = load_policy_network(
            train(
                objective,
                args.steps,
                Path(args.root),
                args.as_user,
                args.threads,
                tuple(args.overrides),
            )
        )
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
