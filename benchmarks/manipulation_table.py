"""Collect the manipulation rollout reports into one JSON and a markdown table.

    python benchmarks/manipulation_table.py --out docs/results/manipulation_policies.json

Reads ``runs/rollout/<task>/<objective>-<model>/report.json`` as written by
``benchmarks/manipulation.sh`` and prints one row per (task, objective, step budget).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows_from_reports(root: Path, model: str) -> list[dict]:
    """One row per budget of every report under ``root/<task>/<objective>-<model>/``."""
    rows = []
    for path in sorted(root.glob(f"*/*-{model}/report.json")):
        report = json.loads(path.read_text())
        for budget in report["budgets"]:
            rows.append(
                {
                    "task": report["task"],
                    "objective": report["objective"],
                    "model": model,
                    "train_step": report["train_step"],
                    "steps": budget["steps"],
                    "successes": budget["successes"],
                    "episodes": budget["n_episodes"],
                    "success_rate": budget["success_rate"],
                    "success_ci95": budget["success_ci95"],
                    "mean_length": budget["mean_length"],
                    "faults": len(budget["faults"]),
                    "chunk_latency_median_ms": budget["latency"]["median_ms"],
                    "seeds": report["seeds"],
                    "date": report["date"],
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | method | passes / chunk | success (95% Wilson) | mean length | chunk latency |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["success_ci95"]
        lines.append(
            f"| {r['task']} | {r['objective']} | {r['steps']} | {r['successes']}/{r['episodes']}"
            f" = {r['success_rate']:.2f} [{low:.2f}, {high:.2f}] | {r['mean_length']:.0f} |"
            f" {r['chunk_latency_median_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/rollout")
    parser.add_argument("--model", default="unet_tiny")
    parser.add_argument("--out", default="docs/results/manipulation_policies.json")
    args = parser.parse_args()
    rows = rows_from_reports(Path(args.root), args.model)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
