"""Screening the shortcut family (shortcut, MeanFlow, split targets) and its samplers on Push-T.

    python benchmarks/interval_screen.py train split shortcut_smooth   # train (or resume)
    python benchmarks/interval_screen.py evaluate split                # 100 episodes per budget
    python benchmarks/interval_screen.py report                        # rebuild the table
    python benchmarks/interval_screen.py all --steps 4000 --episodes 200 split   # a finalist

Every variant trains ``unet_small`` on the same 200 demonstrations (seeds 0-199) with seed 0,
batch 256, lr 5e-4, bf16 and one torch thread (two runs side by side on two cores), for
``--steps`` steps. Each final EMA checkpoint is rolled out on seeds 100000+ at 1, 2, 4 and 8
passes with each of the variant's ``--samplers``. Runs resume from their checkpoints after a
kill (their logs: ``runs/ablation/<variant>.log``). One training seed: the table screens, it
does not rank. Results: docs/RESULTS.md, "One network at every budget".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from one_pass_ablation import run_pairs  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "interval_screen"
BUDGETS = [1, 2, 4, 8]
SMOOTH = ["+model.time_scale=1", "+model.step_embedding=length"]
VARIANTS: dict[str, list[str]] = {
    # What MeanFlow taught the shortcut objective: t and d embedded smoothly, live teacher.
    "shortcut_smooth_k4": ["objective=shortcut", "objective.consistency_every=4", *SMOOTH],
    "shortcut_smooth_k8": ["objective=shortcut", "objective.consistency_every=8", *SMOOTH],
    # Interval splitting (SplitMeanFlow): no JVP, half the rows are flow rows.
    "split": ["objective=meanflow", "objective.consistency=split", "objective.flow_share=0.5"],
    "split_mse": [
        "objective=meanflow",
        "objective.consistency=split",
        "objective.flow_share=0.5",
        "objective.norm_p=0",
    ],
    # The same with an eighth of the batch on the whole path (t = 0, d = 1): the 1-pass jump.
    "split_full": [
        "objective=meanflow",
        "objective.consistency=split",
        "objective.flow_share=0.5",
        "objective.norm_p=0",
        "objective.full_share=0.125",
    ],
    # MeanFlow's derivative by a central finite difference (Transition Models).
    "difference": [
        "objective=meanflow",
        "objective.consistency=difference",
        "objective.flow_share=0.5",
    ],
    "meanflow_half": ["objective=meanflow", "objective.flow_share=0.5"],
    "meanflow_mse": ["objective=meanflow", "objective.norm_p=0"],
    "meanflow": ["objective=meanflow"],
    "flow": ["objective=flow"],
}
SAMPLERS = ("jumps", "euler", "jump_euler")


def run_dir(name: str, steps: int) -> Path:
    return ROOT / "runs" / "screen" / f"{name}-{steps}"


def train_command(name: str, steps: int) -> list[str]:
    return (
        [sys.executable, "-m", "shortcut_policy.train", "task=push_t", *VARIANTS[name]]
        + [f"train.steps={steps}", "train.precision=bf16", "threads=1", "eval_every=0"]
        + ["logging.progress=false", "logging.mode=disabled", "resume=true"]
        + [f"run_dir={run_dir(name, steps)}"]
    )


def samplers_for(name: str, asked: list[str]) -> list[str]:
    """Flow matching has one sampler (its Euler steps); the interval networks take all asked."""
    return ["euler"] if name == "flow" else asked


def out_dir(name: str, steps: int, sampler: str, episodes: int) -> Path:
    return run_dir(name, steps) / f"eval_{sampler}_{episodes}"


def evaluate_command(name: str, steps: int, sampler: str, episodes: int) -> list[str]:
    checkpoint = run_dir(name, steps) / "checkpoints" / "last.safetensors"
    chosen = [] if name == "flow" else [f"sampler={sampler}"]
    return (
        [sys.executable, "-m", "shortcut_policy.rollout", f"checkpoint={checkpoint}", *chosen]
        + [f"steps=[{','.join(map(str, BUDGETS))}]", f"n_episodes={episodes}", "workers=20"]
        + ["threads=1", "latency_calls=20", "progress=false"]
        + [f"out_dir={out_dir(name, steps, sampler, episodes)}"]
    )


def train_minutes(name: str, steps: int) -> float:
    """Minutes of training steps at one thread (wall time: CPU time if the core was not shared)."""
    lines = (run_dir(name, steps) / "metrics.jsonl").read_text().splitlines()
    rates = [json.loads(line) for line in lines]
    seconds = sum(
        (b["step"] - a["step"]) / b["steps_per_s"]
        for a, b in zip(rates, rates[1:], strict=False)
        if "steps_per_s" in b
    )
    return round(seconds / 60, 1)


def collect(name: str, steps: int, sampler: str, episodes: int) -> dict:
    """One (variant, sampler) row, also written to docs/results/interval_screen."""
    report = json.loads((out_dir(name, steps, sampler, episodes) / "report.json").read_text())
    row = {
        "variant": name,
        "sampler": sampler,
        "train_steps": steps,
        "episodes": episodes,
        "start_seed": report.get("start_seed", 100000),
        "overrides": VARIANTS[name],
        "train_minutes_1_thread": train_minutes(name, steps),
        "budgets": {
            str(r["steps"]): {
                "success": r["success_rate"],
                "success_ci95": r["success_ci95"],
                "score": r["mean_score"],
                "score_ci95": r["score_ci95"],
            }
            for r in report["budgets"]
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{steps}-{sampler}-{episodes}.json"
    path.write_text(json.dumps(row, indent=2) + "\n")
    return row


def table() -> str:
    """Every collected row: success (and score) per budget."""
    header = "| variant | steps | sampler | episodes | " + " | ".join(
        f"{b} pass{'es' * (b > 1)}" for b in BUDGETS
    )
    lines = [header + " | train min |", "|---" * (len(BUDGETS) + 5) + "|"]
    for path in sorted(RESULTS.glob("*.json")):
        row = json.loads(path.read_text())
        cells = []
        for budget in BUDGETS:
            got = row["budgets"].get(str(budget))
            cells.append(f"{got['success']:.2f} / {got['score']:.3f}" if got else "–")
        lines.append(
            f"| {row['variant']} | {row['train_steps']} | {row['sampler']} | {row['episodes']} "
            f"| {' | '.join(cells)} | {row['train_minutes_1_thread']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["all", "train", "evaluate", "report"])
    parser.add_argument("variants", nargs="*", default=[])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--samplers", nargs="+", default=["jumps"], choices=SAMPLERS)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_intermixed_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    if args.stage in ("all", "train"):
        commands = [(n, train_command(n, args.steps)) for n in args.variants]
        run_pairs(commands, args.parallel)
    if args.stage in ("all", "evaluate"):
        jobs = [(n, s) for n in args.variants for s in samplers_for(n, args.samplers)]
        commands = [(n, evaluate_command(n, args.steps, s, args.episodes)) for n, s in jobs]
        run_pairs(commands, args.parallel)
        for name, sampler in jobs:
            collect(name, args.steps, sampler, args.episodes)
    text = table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
