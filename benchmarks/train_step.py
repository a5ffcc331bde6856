"""Time per training step of each objective on the same network and batch.

    python benchmarks/train_step.py --model unet_small --batch 256 --threads 2
    python benchmarks/train_step.py --precision fp32 bf16   # bf16 autocast against fp32

The shortcut objective adds two no-grad forward passes on ``B // K`` rows; the target is
shortcut <= 1.3x flow matching. Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from omegaconf import OmegaConf

from shortcut_policy.models.unet1d import ConditionalUnet1D
from shortcut_policy.objectives import build_objective


def step_timer(objective, net, ema, batch, horizon, cond_dim, precision="fp32"):
    """A function that runs one full training step and returns its duration in seconds."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x1 = torch.rand(batch, horizon, 2) * 2 - 1
    cond = torch.randn(batch, cond_dim)

    def one_step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = objective.loss(net, x1, cond, ema, cond)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return one_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--cond-dim", type=int, default=10, help="Push-T state x 2 obs steps")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument(
        "--objectives",
        nargs="+",
        default=["flow", "shortcut", "ddpm"],
        choices=["flow", "shortcut", "ddpm", "meanflow"],
        help="the first is the baseline",
    )
    parser.add_argument("--out", default="docs/results/train_step.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model_cfg = OmegaConf.to_container(OmegaConf.load(f"configs/model/{args.model}.yaml"))
    model_cfg.pop("name")
    net = ConditionalUnet1D(2, args.cond_dim, **model_cfg)
    ema = copy.deepcopy(net).requires_grad_(False)
    timers = {}
    for precision in args.precision:
        for objective in args.objectives:
            cfg = OmegaConf.to_container(OmegaConf.load(f"configs/objective/{objective}.yaml"))
            name = objective if precision == "fp32" else f"{objective} {precision}"
            timers[name] = step_timer(
                build_objective(cfg), net, ema, args.batch, args.horizon, args.cond_dim, precision
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
        f"{args.threads} threads, {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M params) |"
    )
    print("|---|---|---|---|")
    for name, row in rows.items():
        row["vs_flow"] = row["median_s"] / base
        print(f"| {name} | {row['median_s']:.3f} | {row['vs_flow']:.2f} | |")
    with open(args.out, "w") as handle:
        json.dump({"args": vars(args), "torch": torch.__version__, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
