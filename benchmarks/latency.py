"""Batch-1 chunk latency per step budget, in ms and as a multiple of one bare forward pass.

    python benchmarks/latency.py --checkpoint runs/push_t/shortcut-unet_small-seed0 \
        runs/push_t/flow-unet_small-seed0 runs/push_t/ddpm-unet_small-seed0 --threads 2

As for every latency figure (shortcut_policy/evaluation/latency.py): median / p95 / p99
over ``--calls`` timed calls after warm-up, at batch 1, with the device and thread count
stated. The bare forward pass is timed right before each budget so
that both figures see the same machine state. Several ``--checkpoint`` arguments compare methods
(shortcut, flow, DDPM/DDIM) on the same network.
"""

from __future__ import annotations

import argparse
import json

import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.evaluation.latency import chunk_latency, encode_latency, forward_latency
from shortcut_policy.tasks import env_factory


def probe_observation(policy: ShortcutPolicy) -> dict:
    """A real first observation of the policy's task (seed 100000)."""
    task = {"name": policy.spec["task"], "env": policy.meta["config"]["task"].get("env")}
    env = env_factory(task)()
    obs, _ = env.reset(seed=100000)
    env.close()
    return obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="+", required=True)
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16, 128])
    parser.add_argument(
        "--flow-steps",
        nargs="+",
        type=int,
        default=None,
        help="budgets for flow-matching checkpoints (default: --steps)",
    )
    parser.add_argument(
        "--ddpm-steps",
        nargs="+",
        type=int,
        default=[1, 2, 4, 8, 10, 16, 100],
        help="budgets for DDPM checkpoints (100 = ancestral DDPM, fewer = DDIM)",
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"device {args.device}, {args.threads} threads, batch 1, {args.calls} calls")
    print(
        "| checkpoint | objective | steps | median ms | p95 ms | p99 ms | x forward | encode ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in args.checkpoint:
        policy = ShortcutPolicy.from_pretrained(path, device=args.device)
        obs = probe_observation(policy)
        budgets = {"ddpm": args.ddpm_steps, "flow": args.flow_steps or args.steps}.get(
            policy.objective.name, args.steps
        )
        for steps in budgets:
            forward = forward_latency(policy, obs, args.calls)
            encode = encode_latency(policy, obs, args.calls)
            chunk = chunk_latency(policy, obs, steps, args.calls)
            ratio = chunk["median_ms"] / forward["median_ms"]
            rows.append(
                {
                    "checkpoint": path,
                    "objective": policy.objective.name,
                    "steps": steps,
                    "chunk": chunk,
                    "forward": forward,
                    "encode": encode,
                    "x_forward": ratio,
                }
            )
            print(
                f"| {path} | {policy.objective.name} | {steps} | {chunk['median_ms']:.2f} "
                f"| {chunk['p95_ms']:.2f} | {chunk['p99_ms']:.2f} | {ratio:.2f} "
                f"| {encode['median_ms']:.2f} |"
            )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(
                {"args": vars(args), "torch": torch.__version__, "rows": rows}, handle, indent=2
            )


if __name__ == "__main__":
    main()
