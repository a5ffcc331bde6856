"""Time per training step of each objective: the trainer's own ``train_step`` on a real task.

    python benchmarks/train_step.py --model unet_small --batch 256 --threads 2
    python benchmarks/train_step.py --precision fp32 bf16   # bf16 autocast against fp32
    python benchmarks/train_step.py --objectives flow meanflow:objective.consistency=split

An objective may carry config overrides after a colon, comma-separated.

Each objective gets a run built exactly as ``python -m shortcut_policy.train`` builds it (task
data, observation encoder, EMA, optimizer, loss module) and the timed call is
``shortcut_policy.train.train_step`` on one fixed batch: encoder, loss, backward, clipping,
optimizer and EMA updates. The shortcut objective adds no-grad forward passes on its
consistency rows; the target is shortcut <= 1.3x flow matching. Prints a Markdown table and
writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from shortcut_policy.tasks import CONFIG_DIR
from shortcut_policy.train import build_run, to_device, train_step


def step_timer(task: str, model: str, objective: str, batch: int, precision: str, threads: int):
    """A function that runs one real training step and returns its duration in seconds.

    ``objective`` is a config name, optionally with overrides: ``meanflow:objective.x=1,...``.
    """
    objective, _, extra = objective.partition(":")
    run_dir = tempfile.mkdtemp(prefix="train_step_")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(
            config_name="train",
            overrides=[
                f"task={task}",
                f"model={model}",
                f"objective={objective}",
                f"train.batch_size={batch}",
                f"train.precision={precision}",
                f"threads={threads}",
                "device=cpu",
                f"run_dir={run_dir}",
                "logging.mode=disabled",
                *filter(None, extra.split(",")),
            ],
        )
    run = build_run(cfg)
    loader = DataLoader(run.data.train, batch_size=batch, shuffle=True)
    fixed = to_device(next(iter(loader)), run.device)

    def one_step() -> float:
        start = time.perf_counter()
        train_step(run, fixed)
        return time.perf_counter() - start

    return one_step, sum(p.numel() for p in run.model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--task", default="push_t")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument(
        "--objectives",
        nargs="+",
        default=["flow", "shortcut", "ddpm"],
        help="flow | shortcut | ddpm | meanflow, each optionally name:override,...; "
        "the first is the baseline",
    )
    parser.add_argument("--out", default="docs/results/train_step.json")
    args = parser.parse_args()
    timers = {}
    for precision in args.precision:
        for objective in args.objectives:
            name = objective if precision == "fp32" else f"{objective} {precision}"
            timers[name], n_params = step_timer(
                args.task, args.model, objective, args.batch, precision, args.threads
            )
    times = {name: [] for name in timers}
    # Round-robin, so drift in machine load hits every objective alike.
    for i in range(args.warmup + args.steps):
        for name, timer in timers.items():
            elapsed = timer()
            if i >= args.warmup:
                times[name].append(elapsed)
    rows = {
        name: {"median_s": statistics.median(t), "mean_s": statistics.fmean(t)}
        for name, t in times.items()
    }
    base = rows[next(iter(rows))]["median_s"]  # flow matching at the first precision
    print(
        f"| objective | median s/step | x flow | ({args.model}, batch {args.batch}, "
        f"{args.threads} threads, {n_params / 1e6:.2f} M params, task {args.task}) |"
    )
    print("|---|---|---|---|")
    for name, row in rows.items():
        row["vs_flow"] = row["median_s"] / base
        print(f"| {name} | {row['median_s']:.3f} | {row['vs_flow']:.2f} | |")
    with open(args.out, "w") as handle:
        json.dump({"args": vars(args), "torch": torch.__version__, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
