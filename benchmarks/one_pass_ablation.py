"""One-pass recipe ablation on Push-T low-dim: each option alone, and the chosen recipe.

    python benchmarks/one_pass_ablation.py all                 # train, evaluate, report
    python benchmarks/one_pass_ablation.py train coarse live   # some variants only
    python benchmarks/one_pass_ablation.py report              # rebuild the table

Every variant trains ``unet_small`` on the same 200 demonstrations (seeds 0-199), with seed 0,
batch 256, lr 5e-4, bf16, one torch thread, for ``--steps`` steps (2,000: two runs side by side
fit a session), starting from the *old* defaults and changing one thing; ``recipe`` changes the
chosen combination. Each final EMA checkpoint is evaluated on 100 episodes, seeds 100000-100099,
at 1, 2, 4 and 128 passes. Runs resume from their checkpoints when interrupted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "one_pass_ablation"
BUDGETS = [1, 2, 4, 128]
# The objective and trainer settings that main shipped before this ablation.
OLD = [
    "objective=shortcut",
    "objective.consistency_every=8",
    "objective.coarse_share=0.0",
    "objective.ema_teacher=true",
    "objective.teacher_decay=0.0",
    "objective.finest_steps=128",
    "train.lr_floor=0.0",
    "train.weight_decay=1e-6",
]
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "coarse": ["objective.coarse_share=0.5"],
    "k2": ["objective.consistency_every=2"],
    "live": ["objective.ema_teacher=false"],
    "fast_teacher": ["objective.teacher_decay=0.99"],
    "lr_floor": ["train.lr_floor=0.2"],
    "m16": ["objective.finest_steps=16"],
    "weight_decay": ["train.weight_decay=1e-2"],
    "recipe": [
        "objective.coarse_share=0.5",
        "objective.consistency_every=2",
        "objective.ema_teacher=false",
    ],
    "flow": ["objective=flow"],
}


def run_dir(name: str, steps: int) -> Path:
    return ROOT / "runs" / "ablation" / (name if steps == 2000 else f"{name}-{steps}")


def train_command(name: str, steps: int) -> list[str]:
    base = ["objective=flow"] if name == "flow" else OLD + VARIANTS[name]
    return (
        [sys.executable, "-m", "shortcut_policy.train", "task=push_t", *base]
        + [f"train.steps={steps}", "train.precision=bf16", "threads=1", "eval_every=0"]
        + ["logging.progress=false", "logging.mode=disabled", "resume=true"]
        + [f"run_dir={run_dir(name, steps)}"]
    )


def evaluate_command(name: str, steps: int, budgets: list[int]) -> list[str]:
    if name == "m16":  # its largest budget is M = 16
        budgets = sorted({min(b, 16) for b in budgets})
    checkpoint = run_dir(name, steps) / "checkpoints" / "last.safetensors"
    return (
        [sys.executable, "-m", "shortcut_policy.rollout", f"checkpoint={checkpoint}"]
        + [f"steps=[{','.join(map(str, budgets))}]", "n_episodes=100", "workers=20", "threads=1"]
        + ["latency_calls=20", "progress=false", f"out_dir={run_dir(name, steps) / 'eval_final'}"]
    )


def run_pairs(commands: list[tuple[str, list[str]]], parallel: int) -> None:
    """Run the commands ``parallel`` at a time (each at one thread), logging to the run dirs."""
    pending, active = list(commands), []
    while pending or active:
        while pending and len(active) < parallel:
            name, command = pending.pop(0)
            log = ROOT / "runs" / "ablation" / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            print("+", " ".join(command), flush=True)
            active.append(subprocess.Popen(command, cwd=ROOT, stdout=log.open("a"), stderr=-2))
        time.sleep(5)
        for proc in [p for p in active if p.poll() is not None]:
            if proc.returncode:
                raise SystemExit(f"{' '.join(proc.args)} failed ({proc.returncode})")
            active.remove(proc)


def collect(name: str, steps: int) -> dict:
    """The variant's evaluation rows and training time, also written to docs/results."""
    report = json.loads((run_dir(name, steps) / "eval_final" / "report.json").read_text())
    lines = (run_dir(name, steps) / "metrics.jsonl").read_text().splitlines()
    rates = [json.loads(line) for line in lines]
    train_s = sum(
        (b["step"] - a["step"]) / b["steps_per_s"]
        for a, b in zip(rates, rates[1:], strict=False)
        if "steps_per_s" in b
    )
    row = {
        "variant": name,
        "train_steps": steps,
        "overrides": ["objective=flow"] if name == "flow" else VARIANTS[name],
        # Wall time of the training steps at one thread: CPU time only if the core was not shared.
        "train_cpu_minutes": round(train_s / 60, 1),
        "budgets": {
            str(r["steps"]): {
                "score": r["mean_score"],
                "score_ci95": r["score_ci95"],
                "success": r["success_rate"],
                "success_ci95": r["success_ci95"],
            }
            for r in report["budgets"]
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}-{steps}.json").write_text(json.dumps(row, indent=2))
    return row


def report(names: list[str], steps: int) -> str:
    header = "| variant | changes | " + " | ".join(f"{b} pass{'es' * (b > 1)}" for b in BUDGETS)
    lines = [header + " | train min |", "|---" * (len(BUDGETS) + 3) + "|"]
    for name in names:
        path = RESULTS / f"{name}-{steps}.json"
        if not path.is_file():
            continue
        row = json.loads(path.read_text())
        cells = []
        for budget in BUDGETS:
            got, label = row["budgets"].get(str(budget)), ""
            if budget == max(BUDGETS) and got is None and "16" in row["budgets"]:
                got, label = row["budgets"]["16"], "at 16: "  # m16: its largest budget
            cells.append(f"{label}{got['score']:.3f} ({got['success']:.2f})" if got else "–")
        changes = ", ".join(row["overrides"]) or "old defaults"
        lines.append(f"| {name} | `{changes}` | {' | '.join(cells)} | {row['train_cpu_minutes']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["all", "train", "evaluate", "report"])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=2)
    # 128 passes cost ~90% of an evaluation (~10 CPU minutes): `--budgets 1 2 4` to skip them.
    parser.add_argument("--budgets", type=int, nargs="+", default=BUDGETS)
    args = parser.parse_args()
    if args.stage in ("all", "train"):
        run_pairs([(n, train_command(n, args.steps)) for n in args.variants], args.parallel)
    if args.stage in ("all", "evaluate"):
        commands = [(n, evaluate_command(n, args.steps, args.budgets)) for n in args.variants]
        run_pairs(commands, args.parallel)
        for name in args.variants:
            collect(name, args.steps)
    table = report(args.variants, args.steps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"table-{args.steps}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
