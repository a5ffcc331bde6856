"""Benchmark the scripted Push-T expert over a fixed range of env seeds.

Default seeds are 100000..100099 (100 episodes), disjoint from the seeds used to collect
demonstrations. Success and score follow envs/push_t/scoring.py (coverage > 0.95 at any
step within 300 steps; score = max of min(coverage / 0.95, 1)). Episodes stop 5 steps after
success, as demonstrations do, which does not change success or score.

Usage:
    python benchmarks/expert_push_t.py --n 100 --start-seed 100000 --workers 1 \
        --out runs/expert_push_t.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.push_t.expert import EXPERT_VERSION  # noqa: E402
from envs.push_t.expert_episode import run_expert_episode  # noqa: E402
from shortcut_policy.evaluation.stats import mean_interval, wilson_interval  # noqa: E402


def run_one(seed: int, max_steps: int) -> dict:
    """One timed episode, reduced to JSON-friendly scalars."""
    t0 = time.perf_counter()
    ep = run_expert_episode(seed, max_steps=max_steps)
    return {
        "seed": seed,
        "success": bool(ep["success"]),
        "score": float(ep["score"]),
        "length": int(ep["length"]),
        "seconds": time.perf_counter() - t0,
    }


def summarize(episodes: list[dict], wall_seconds: float, workers: int) -> dict:
    """Success rate (Wilson 95%), mean score (normal 95%), lengths and throughput."""
    n = len(episodes)
    wins = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(wins, n)
    score, s_lo, s_hi = mean_interval([e["score"] for e in episodes])
    steps = sum(e["length"] for e in episodes)
    cpu_seconds = sum(e["seconds"] for e in episodes)
    return {
        "expert_version": EXPERT_VERSION,
        "n_episodes": n,
        "successes": wins,
        "success_rate": wins / n,
        "success_rate_wilson95": [lo, hi],
        "mean_score": score,
        "mean_score_ci95": [s_lo, s_hi],
        "mean_length": steps / n,
        "mean_length_success": (
            sum(e["length"] for e in episodes if e["success"]) / wins if wins else None
        ),
        "env_steps_per_second_per_worker": steps / cpu_seconds,
        "seconds_per_episode": cpu_seconds / n,
        "wall_seconds": wall_seconds,
        "workers": workers,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of episodes")
    parser.add_argument("--start-seed", type=int, default=100_000, help="first env seed")
    parser.add_argument("--workers", type=int, default=1, help="processes (1 = in-process)")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("runs/expert_push_t.json"))
    args = parser.parse_args(argv)

    seeds = list(range(args.start_seed, args.start_seed + args.n))
    t0 = time.perf_counter()
    episodes = []
    if args.workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.workers) as pool:
            jobs = [pool.apply_async(run_one, (s, args.max_steps)) for s in seeds]
            for job in jobs:
                episodes.append(job.get())
                _progress(episodes[-1], len(episodes), args.n)
    else:
        for s in seeds:
            episodes.append(run_one(s, args.max_steps))
            _progress(episodes[-1], len(episodes), args.n)
    summary = summarize(episodes, time.perf_counter() - t0, args.workers)
    summary["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    summary["episodes"] = episodes
    _report(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(args.out)  # atomic: readers never see a half-written file
    print(f"wrote {args.out}")
    return summary


def _progress(ep: dict, done: int, total: int) -> None:
    print(
        f"[{done}/{total}] seed {ep['seed']} success={ep['success']} score={ep['score']:.3f} "
        f"length={ep['length']} {ep['seconds']:.1f}s",
        flush=True,
    )


def _report(s: dict) -> None:
    lo, hi = s["success_rate_wilson95"]
    s_lo, s_hi = s["mean_score_ci95"]
    print(
        f"expert {s['expert_version']}: success {s['successes']}/{s['n_episodes']} = "
        f"{s['success_rate']:.2f} (95% Wilson [{lo:.2f}, {hi:.2f}]), "
        f"mean score {s['mean_score']:.3f} [{s_lo:.3f}, {s_hi:.3f}], "
        f"mean length {s['mean_length']:.1f} steps, "
        f"{s['env_steps_per_second_per_worker']:.0f} env steps/s per worker, "
        f"{s['seconds_per_episode']:.2f} s/episode, wall {s['wall_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
