"""Per-budget evaluation summaries: a Markdown table, a JSON file and a success-vs-latency plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shortcut_policy.atomic import write_text
from shortcut_policy.evaluation.episodes import EpisodeResult
from shortcut_policy.evaluation.stats import mean_interval, wilson_interval


def summarize_episodes(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Success rate with a 95% Wilson interval, mean score with a 95% interval, faults."""
    n = len(results)
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, n)
    score, score_low, score_high = mean_interval([r.score for r in results])
    return {
        "n_episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "success_ci95": [low, high],
        "mean_score": score,
        "score_ci95": [score_low, score_high],
        "mean_length": float(np.mean([r.length for r in results])) if n else 0.0,
        "faults": [{"seed": r.seed, "fault": r.fault} for r in results if r.fault],
        "joins": mean_joins(results),
        "episodes": [
            {"seed": r.seed, "success": r.success, "score": r.score, "length": r.length, **r.joins}
            for r in results
        ],
    }


def mean_joins(results: Sequence[EpisodeResult]) -> dict[str, float | None]:
    """Each chunk-join metric averaged over the episodes that define it (None if none do)."""
    keys = sorted({key for r in results for key in r.joins})
    means = {}
    for key in keys:
        values = [r.joins[key] for r in results if r.joins.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per step budget."""
    lines = [
        "| steps | success (95% CI) | mean best score | chunk latency median / p95 / p99 (ms) "
        "| x forward | throughput (chunks/s) | boundary ratio | jerk | faults |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lat = row["latency"]
        low, high = row["success_ci95"]
        joins = row.get("joins", {})
        lines.append(
            f"| {row['steps']} | {row['success_rate']:.2f} [{low:.2f}, {high:.2f}] "
            f"| {row['mean_score']:.3f} | {lat['median_ms']:.2f} / {lat['p95_ms']:.2f} / "
            f"{lat['p99_ms']:.2f} | {row['latency_x_forward']:.2f} "
            f"| {row['throughput_chunks_per_s']:.0f} | {_figure(joins.get('boundary_ratio'))} "
            f"| {_figure(joins.get('jerk'))} | {len(row['faults'])} |"
        )
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def write_json(path: Path, report: dict[str, Any]) -> None:
    write_text(path, json.dumps(report, indent=2))


def plot_success_vs_latency(path: Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """Success rate (with its interval) against median chunk latency, one point per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    x = [row["latency"]["median_ms"] for row in rows]
    y = [row["success_rate"] for row in rows]
    err = np.array(
        [
            [r["success_rate"] - r["success_ci95"][0], r["success_ci95"][1] - r["success_rate"]]
            for r in rows
        ]
    ).T
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
    for row, xi, yi in zip(rows, x, y):
        ax.annotate(str(row["steps"]), (xi, yi), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("chunk latency at batch 1, median (ms)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
