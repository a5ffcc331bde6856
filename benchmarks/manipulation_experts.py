"""Success of the scripted experts: robosuite Lift / Can / Square and MetaWorld MT10, 50 seeds each.

    OMP_NUM_THREADS=1 python benchmarks/manipulation_experts.py --seeds 50 \
        --out docs/results/manipulation_experts.json

Seeds 100000.. (the evaluation seeds, disjoint from the demonstrations' 0..). Each row: task,
successes / episodes, the 95% Wilson interval, mean episode length (steps) and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from envs.metaworld.demos import run_expert_episode as metaworld_episode
from envs.metaworld.env import MT10_TASKS, MetaWorldEnv
from envs.metaworld.env import make_expert as metaworld_expert
from envs.robosuite.demos import run_expert_episode as robosuite_episode
from envs.robosuite.env import RobosuiteEnv
from shortcut_policy.evaluation.stats import wilson_interval

STEP_LIMITS = {"lift": 200, "can": 400, "square": 400, "peg-insert-side": 300}


def measure(task: str, seeds: range) -> dict:
    """Run the expert of ``task`` on every seed; the row described in the module doc."""
    start, lengths, successes = time.perf_counter(), [], 0
    limit = STEP_LIMITS.get(task, 200)
    if task in ("lift", "can", "square"):
        env = RobosuiteEnv(task, max_steps=limit)
        for seed in seeds:
            episode = robosuite_episode(env, task, seed)
            successes += episode["success"]
            lengths.append(len(episode["actions"]))
    else:
        env, expert = MetaWorldEnv(task, max_steps=limit), metaworld_expert(task)
        for seed in seeds:
            episode = metaworld_episode(env, expert, seed)
            successes += episode["success"]
            lengths.append(len(episode["action"]))
    env.close()
    low, high = wilson_interval(successes, len(seeds))
    return {
        "task": task,
        "successes": int(successes),
        "episodes": len(seeds),
        "success_rate": successes / len(seeds),
        "success_ci95": [low, high],
        "mean_length": float(np.mean(lengths)),
        "max_steps": limit,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--start-seed", type=int, default=100_000)
    parser.add_argument("--tasks", nargs="*", default=["lift", "can", "square", *MT10_TASKS])
    parser.add_argument("--out", default="docs/results/manipulation_experts.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Constant")  # MetaWorld's experts saturate
    seeds = range(args.start_seed, args.start_seed + args.seeds)
    rows = []
    for task in args.tasks:
        rows.append(measure(task, seeds))
        row = rows[-1]
        print(
            f"{task:22s} {row['successes']}/{row['episodes']} "
            f"[{row['success_ci95'][0]:.2f}, {row['success_ci95'][1]:.2f}] "
            f"len {row['mean_length']:.0f} ({row['seconds']:.0f} s)",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": [seeds[0], seeds[-1]], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
