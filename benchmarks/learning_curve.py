"""A learning curve from a training run: success at 1 pass against training hours and epochs.

Long runs go in pieces: each invocation trains for ``train.max_minutes`` and pauses with a
checkpoint; the next, with ``resume=true``, continues the same schedule (``train.steps`` sets the
learning-rate decay, not the invocation). The in-training evaluator scores the EMA weights every
``eval_every`` steps on ``eval_episodes`` episodes (seeds 200000+, apart from the final
evaluation's 100000+), and ``metrics.jsonl`` keeps every piece's rows::

    python -m shortcut_policy.train task=can model=unet_small train.steps=40000 \\
        eval_every=4000 eval_episodes=50 train.max_minutes=170 run_dir=runs/can/long  # piece 1
    python -m shortcut_policy.train ... resume=true                                   # piece 2 ...
    python benchmarks/learning_curve.py runs/can/long --name can_unet_small

Training hours count the steps only (from the logged ``steps_per_s``; evaluations and
validation are left out), so pieces on a loaded machine add up like one run. Writes
``docs/results/learning_curves/<name>.json`` and ``docs/media/learning_curve_<name>.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_rows(run_dir: Path) -> list[dict]:
    """``metrics.jsonl`` of a run, one dict per logged step (a torn last line is skipped)."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def curve(rows: list[dict], budget: int = 1) -> list[dict]:
    """Per evaluated step: training hours so far, epoch, success and score at ``budget``, and
    the newest validation error (``val/mse``, EMA weights) logged at or before that step."""
    points, seconds, last_step, val_mse = [], 0.0, 0, None
    for row in sorted(rows, key=lambda r: r["step"]):
        if row.get("steps_per_s"):
            seconds += (row["step"] - last_step) / row["steps_per_s"]
        last_step = row["step"]
        val_mse = row.get("val/mse", val_mse)
        if f"eval/success@{budget}" in row:
            points.append(
                {
                    "step": row["step"],
                    "epoch": row.get("epoch"),
                    "train_hours": seconds / 3600.0,
                    "success": row[f"eval/success@{budget}"],
                    "score": row.get(f"eval/score@{budget}"),
                    "val_mse": val_mse,
                }
            )
    return points


def plot(points: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    hours = [p["train_hours"] for p in points]
    ax.plot(hours, [p["success"] for p in points], marker="o", label="success")
    scores = [p["score"] for p in points]
    if None not in scores and scores != [p["success"] for p in points]:  # robosuite: equal
        ax.plot(hours, scores, marker="s", label="mean best score")
    if all(p["val_mse"] is not None for p in points):
        right = ax.twinx()
        right.plot(hours, [p["val_mse"] for p in points], "k--", lw=1, label="validation error")
        right.set_ylabel("validation error (EMA weights)")
        right.set_ylim(bottom=0)
        right.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("training hours (steps only)")
    ax.set_ylabel("1 pass")
    ax.set_ylim(-0.02, 1.02)
    if points and all(p["epoch"] is not None for p in points):
        top = ax.secondary_xaxis(
            "top",
            functions=(
                lambda h: h * points[-1]["epoch"] / max(hours[-1], 1e-9),
                lambda e: e * hours[-1] / max(points[-1]["epoch"], 1e-9),
            ),
        )
        top.set_xlabel("epochs")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True, help="file name of the JSON and the plot")
    parser.add_argument("--budget", type=int, default=1, help="passes per chunk evaluated")
    args = parser.parse_args()
    points = curve(read_rows(args.run_dir), args.budget)
    if not points:
        raise SystemExit(
            f"{args.run_dir / 'metrics.jsonl'} has no eval/success@{args.budget} rows: train "
            "with eval_every > 0 (and eval_steps including that budget)"
        )
    out = ROOT / "docs" / "results" / "learning_curves" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run_dir": str(args.run_dir), "points": points}, indent=2) + "\n")
    plot(
        points,
        f"{args.name}: 1-pass success while training",
        ROOT / "docs" / "media" / f"learning_curve_{args.name}.png",
    )
    for p in points:
        epoch = "n/a" if p["epoch"] is None else f"{p['epoch']:.1f}"
        print(
            f"step {p['step']:>6}  epoch {epoch:>7}  {p['train_hours']:6.2f} h  {p['success']:.2f}"
        )


if __name__ == "__main__":
    main()
