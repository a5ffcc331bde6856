"""Push-T headline: shortcut, flow matching, DDPM/DDIM and MeanFlow on the same data and network.

    python benchmarks/push_t_headline.py all            # train (or resume), evaluate, time, report
    python benchmarks/push_t_headline.py report         # only rebuild the table and plot
    python benchmarks/push_t_headline.py all --seeds 0 1 2 --parallel 2   # training seeds

Each stage runs the documented commands, so every figure can also be reproduced by hand:

1. ``python -m shortcut_policy.train task=push_t objective=<m> resume=true`` for m in shortcut,
   flow, ddpm, meanflow (the README's default config: unet_small, 4,000 steps, batch 256, seed 0);
2. ``python -m shortcut_policy.rollout`` on each final checkpoint (EMA weights), 100 episodes
   per budget on seeds 100000-100099 (demonstrations use 0-199): shortcut and flow at 1 ... 128
   passes, DDPM at 100 (ancestral) and DDIM at 1, 2, 4, 8, 10, 16, MeanFlow at 1 ... 16;
3. ``benchmarks/latency.py`` on a quiet machine: batch-1 chunk latency per budget;
4. the table (docs/results/push_t_headline.md) and the plot (docs/media/push_t_headline.png).

With ``--seeds``, each (method, seed) is trained (``seed=S``, resuming), evaluated and written to
``docs/results/headline_seeds/push_t_<method>_seed<S>.json`` as soon as it exists; a pair already
written is skipped, so a killed sweep resumes where it stopped. ``--parallel 2`` runs two pairs
side by side at one thread each. The report gives, per budget, success and score as mean ±
standard deviation over the seeds and pooled over all their episodes (Wilson interval for
success, Student's t for the score): ``docs/results/push_t_headline_seeds.md``.
``meanflow_euler`` trains nothing: it evaluates MeanFlow's seed checkpoints with
``sampler=euler`` (training them first if they are missing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shortcut_policy.evaluation.stats import mean_interval, wilson_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
SEED_RESULTS = RESULTS / "headline_seeds"
METHODS = {
    # 32 and 64 passes add ~40% to the evaluation's CPU time and nothing a robot would use.
    "shortcut": [1, 2, 4, 8, 16, 128],
    "flow": [1, 2, 4, 8, 16, 32, 64, 128],
    "ddpm": [1, 2, 4, 8, 10, 16, 100],
    "meanflow": [1, 2, 4, 8, 16],
    "shortcut_smooth": [1, 2, 4, 8, 16],
    "meanflow_euler": [2, 4, 8, 16],
}
# The sweep's budgets (what a robot would use; 32 to 128 passes cost most of the CPU time).
SEED_BUDGETS = (1, 2, 4, 8, 16, 100)
# Methods that are an objective plus options (the finalist of "One network at every budget":
# shortcut with t and d embedded smoothly and a consistency batch every 8th row).
OVERRIDES = {
    "shortcut_smooth": [
        "objective=shortcut",
        "objective.consistency_every=8",
        "+model.time_scale=1",
        "+model.step_embedding=length",
    ],
}
# Evaluation-only variants: another sampler on a trained method's own checkpoints (they train
# nothing of their own; at 1 pass every MeanFlow sampler is the same jump).
SAMPLER_VARIANTS = {"meanflow_euler": ("meanflow", "euler")}
# Flow matching is timed at the small budgets only: at N passes it runs the same network and
# integration loop as shortcut at N passes, so the large budgets would repeat those timings.
FLOW_TIMED = [1, 2, 4, 8, 16]
LABELS = {
    "shortcut": "shortcut (today's defaults)",
    "flow": "flow matching",
    "ddpm": "DDIM / DDPM-100",
    "meanflow": "MeanFlow",
    "shortcut_smooth": "shortcut, smooth t and d, K = 8",
    "meanflow_euler": "MeanFlow, Euler sampler",
}
# These run the same network and integration loop as shortcut at N passes, so where they are
# not timed themselves shortcut's figure stands in. MeanFlow is not timed at all: its loop is
# exactly flow matching's, which is.
SAME_LOOP_AS_SHORTCUT = ("flow", "meanflow", "meanflow_euler")
TIMED = ("shortcut", "flow", "ddpm")


def run_dir(method: str, seed: int = 0) -> Path:
    return ROOT / "runs" / "push_t" / f"{method}-unet_small-seed{seed}"


def objective_args(method: str) -> list[str]:
    return OVERRIDES.get(method, [f"objective={method}"])


def final_checkpoint(method: str, seed: int = 0) -> Path:
    return run_dir(method, seed) / "checkpoints" / "step_00004000.safetensors"


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def train(method: str, threads: int, seed: int = 0) -> None:
    run(
        [sys.executable, "-m", "shortcut_policy.train", "task=push_t", *objective_args(method)]
        + ["resume=true", f"threads={threads}", "logging.progress=false", f"seed={seed}"]
        # A run takes 30-120 CPU-minutes; a checkpoint every 250 steps loses at most a few
        # minutes when a session ends mid-run (resume=true continues it).
        + ["checkpoint_every=250"]
        # auto: bf16 where the CPU computes it natively (AVX512-BF16, AMX), else fp32. Forcing
        # bf16 on an AVX2-only CPU emulates it at a third of fp32's speed (0.2 vs 0.6 steps/s).
        + ["train.precision=auto", f"run_dir={run_dir(method, seed)}"]
    )


def evaluate(method: str, workers: int, threads: int) -> None:
    steps = ",".join(str(s) for s in METHODS[method])
    out = ROOT / "runs" / "rollout" / "headline" / method
    run(
        [sys.executable, "-m", "shortcut_policy.rollout", f"checkpoint={final_checkpoint(method)}"]
        + [f"steps=[{steps}]", "n_episodes=100", f"workers={workers}", f"threads={threads}"]
        + ["latency_calls=20", "progress=false", f"out_dir={out}"]
    )
    report = json.loads((out / "report.json").read_text())
    (RESULTS / f"push_t_{method}_rollout.json").write_text(json.dumps(report, indent=2))


def seed_json(method: str, seed: int) -> Path:
    return SEED_RESULTS / f"push_t_{method}_seed{seed}.json"


def train_and_evaluate(method: str, seed: int, workers: int, threads: int) -> None:
    """One (method, training seed): train or resume, roll out, write its JSON (skipped when
    the JSON exists: the pair is done)."""
    if seed_json(method, seed).is_file():
        return
    trained, sampler = SAMPLER_VARIANTS.get(method, (method, None))
    train(trained, threads, seed)
    out = ROOT / "runs" / "rollout" / "headline_seeds" / f"{method}-seed{seed}"
    steps = ",".join(str(s) for s in METHODS[method] if s in SEED_BUDGETS)
    run(
        [sys.executable, "-m", "shortcut_policy.rollout"]
        + [f"checkpoint={final_checkpoint(trained, seed)}", f"steps=[{steps}]", "n_episodes=100"]
        + [f"workers={workers}", f"threads={threads}", "latency_calls=20", "progress=false"]
        + [f"out_dir={out}"]
        + ([f"sampler={sampler}"] if sampler else [])
    )
    report = json.loads((out / "report.json").read_text())
    SEED_RESULTS.mkdir(parents=True, exist_ok=True)
    seed_json(method, seed).write_text(json.dumps({"train_seed": seed, **report}, indent=2))


def seed_rows(seeds: list[int]) -> list[dict]:
    """Per (method, budget) over the seeds whose JSON exists: success and score, mean ±
    standard deviation over seeds, and pooled over every episode with a 95% interval."""
    rows = []
    for method in METHODS:
        reports = [
            json.loads(seed_json(method, s).read_text())
            for s in seeds
            if seed_json(method, s).is_file()
        ]
        for steps in (s for s in METHODS[method] if s in SEED_BUDGETS):
            having = [r for r in reports if any(b["steps"] == steps for b in r["budgets"])]
            budgets = [b for r in having for b in r["budgets"] if b["steps"] == steps]
            if not budgets:
                continue
            rates = [b["success_rate"] for b in budgets]
            means = [b["mean_score"] for b in budgets]
            scores = [e["score"] for b in budgets for e in b["episodes"]]
            wins, n = sum(b["successes"] for b in budgets), sum(b["n_episodes"] for b in budgets)
            rows.append(
                {
                    "method": method,
                    "steps": steps,
                    "seeds": [r["train_seed"] for r in having],
                    "success_mean": statistics.fmean(rates),
                    "success_std": statistics.stdev(rates) if len(rates) > 1 else 0.0,
                    "success_pooled": wins / n,
                    "success_pooled_ci95": wilson_interval(wins, n),
                    "score_mean": statistics.fmean(means),
                    "score_std": statistics.stdev(means) if len(means) > 1 else 0.0,
                    "score_pooled_ci95": mean_interval(scores)[1:],
                    "episodes": n,
                }
            )
    return rows


def spread(row: dict, key: str, digits: int) -> str:
    """`` ± sd`` over training seeds, or `` (one seed)`` where there is no spread."""
    return f" ± {row[key]:.{digits}f}" if len(row["seeds"]) > 1 else " (one seed)"


def seeds_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | passes | seeds | success mean ± sd | success pooled [95% CI] "
        "| mean best score, mean ± sd | pooled [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["success_pooled_ci95"]
        s_low, s_high = r["score_pooled_ci95"]
        lines.append(
            f"| {LABELS[r['method']]} | {budget_name(r['method'], r['steps'])} "
            f"| {len(r['seeds'])} | {r['success_mean']:.2f}{spread(r, 'success_std', 2)} "
            f"| {r['success_pooled']:.2f} [{low:.2f}, {high:.2f}] "
            f"| {r['score_mean']:.3f}{spread(r, 'score_std', 3)} "
            f"| [{s_low:.3f}, {s_high:.3f}] |"
        )
    return "\n".join(lines)


def seeds(args: argparse.Namespace) -> None:
    """The ``--seeds`` sweep: every (method, seed) pair, ``--parallel`` at a time, then the
    aggregated table."""
    if args.stage in ("all", "train", "evaluate"):
        threads = 1 if args.parallel > 1 else args.threads
        workers = max(1, args.workers // args.parallel)
        # Trained methods first, so that a sampler variant never trains its method's run
        # directory while that method's own pair is training it.
        trained = [m for m in args.methods if m not in SAMPLER_VARIANTS]
        variants = [m for m in args.methods if m in SAMPLER_VARIANTS]
        for methods in (trained, variants):
            pairs = [(m, s) for s in args.seeds for m in methods]
            with ThreadPoolExecutor(args.parallel) as pool:
                jobs = [pool.submit(train_and_evaluate, m, s, workers, threads) for m, s in pairs]
                for job in jobs:
                    job.result()  # a failed pair stops the sweep with its error
    rows = seed_rows(args.seeds)
    table = seeds_markdown(rows)
    seeds_plot(rows, ROOT / "docs" / "media" / "push_t_headline_seeds.png")
    (RESULTS / "push_t_headline_seeds.md").write_text(table + "\n")
    (RESULTS / "push_t_headline_seeds.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


def quiet_latency_ms(method: str, steps: int) -> float | None:
    """Batch-1 chunk latency from the quiet-machine benchmark (``latency`` stage). Every
    method but DDPM runs the same network and loop as shortcut at N passes, so shortcut's
    figure stands for them."""
    path = RESULTS / "latency_push_t_methods.json"
    if not path.is_file():
        return None
    timed = {(r["objective"], r["steps"]): r for r in json.loads(path.read_text())["rows"]}
    row = timed.get(("ddpm" if method == "ddpm" else "shortcut", steps))
    return row["chunk"]["median_ms"] if row else None


def seeds_plot(rows: list[dict], path: Path) -> None:
    """Success (mean over training seeds, bars: one standard deviation) against latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=130)
    for method, marker in zip(METHODS, "osD^vP", strict=True):
        mine = [(r, quiet_latency_ms(method, r["steps"])) for r in rows if r["method"] == method]
        mine = [(r, ms) for r, ms in mine if ms is not None]
        if not mine:
            continue
        x = [ms for _, ms in mine]
        y = [r["success_mean"] for r, _ in mine]
        err = [r["success_std"] for r, _ in mine]
        seeds = len(mine[0][0]["seeds"])
        label = f"{LABELS[method]} ({seeds} seed{'s' if seeds > 1 else ''})"
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=2, label=label)
        for (r, _), xi, yi in zip(mine, x, y, strict=True):
            ax.annotate(
                budget_name(method, r["steps"]),
                (xi, yi),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=7,
            )
    ax.set_xscale("log")
    ax.set_xlabel("chunk latency, batch 1, 2 CPU threads (ms, log scale)")
    ax.set_ylabel("success, mean over training seeds (± sd)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Push-T, unet_small, 4,000 steps, 100 episodes per seed and budget", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def time_latency(threads: int) -> None:
    run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--checkpoint"]
        + [str(final_checkpoint(m)) for m in TIMED]
        + ["--steps", *map(str, METHODS["shortcut"]), "--ddpm-steps", *map(str, METHODS["ddpm"])]
        + ["--flow-steps", *map(str, FLOW_TIMED)]
        + ["--threads", str(threads), "--out", str(RESULTS / "latency_push_t_methods.json")]
    )


def budget_name(method: str, steps: int) -> str:
    if method != "ddpm":
        return str(steps)
    return "DDPM 100" if steps == 100 else f"DDIM {steps}"


def headline_rows() -> list[dict]:
    """One row per (method, budget): success, score, latency (quiet-machine benchmark)."""
    latency = json.loads((RESULTS / "latency_push_t_methods.json").read_text())
    timed = {(r["objective"], r["steps"]): r for r in latency["rows"]}
    rows = []
    for method in METHODS:
        path = RESULTS / f"push_t_{method}_rollout.json"
        if not path.is_file():  # a method measured only in the seed sweep
            continue
        report = json.loads(path.read_text())
        for budget in report["budgets"]:
            t = timed.get((method, budget["steps"]))
            # Where a same-loop method was not timed itself, shortcut's figure stands in
            # (marked in the table).
            borrowed = t is None and method in SAME_LOOP_AS_SHORTCUT
            if borrowed:
                t = timed.get(("shortcut", budget["steps"]))
            rows.append(
                {
                    "method": method,
                    "steps": budget["steps"],
                    "success": budget["success_rate"],
                    "ci": budget["success_ci95"],
                    "score": budget["mean_score"],
                    "score_ci": budget["score_ci95"],
                    "latency_ms": t["chunk"]["median_ms"] if t else None,
                    "x_forward": t["x_forward"] if t else None,
                    "borrowed": borrowed,
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| method | passes | success [95% CI] | mean score [95% CI] | latency ms (batch 1) "
        "| × forward |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        latency = f"{r['latency_ms']:.2f}" if r["latency_ms"] is not None else "n/a"
        latency += "*" if r.get("borrowed") else ""
        ratio = f"{r['x_forward']:.2f}" if r["x_forward"] is not None else "n/a"
        lines.append(
            f"| {LABELS[r['method']]} | {budget_name(r['method'], r['steps'])} "
            f"| {r['success']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] "
            f"| {r['score']:.3f} [{r['score_ci'][0]:.3f}, {r['score_ci'][1]:.3f}] "
            f"| {latency} | {ratio} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=130)
    for method, marker in zip(METHODS, "osD^vP", strict=True):
        mine = [r for r in rows if r["method"] == method and r["latency_ms"] is not None]
        x = [r["latency_ms"] for r in mine]
        y = [r["success"] for r in mine]
        err = [[r["success"] - r["ci"][0] for r in mine], [r["ci"][1] - r["success"] for r in mine]]
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=2, label=LABELS[method])
        for r, xi, yi in zip(mine, x, y, strict=True):
            ax.annotate(str(r["steps"]), (xi, yi), textcoords="offset points", xytext=(3, 3))
    ax.set_xscale("log")
    ax.set_xlabel("chunk latency, batch 1, 2 CPU threads (ms, log scale)")
    ax.set_ylabel("success rate (100 episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Push-T, unet_small, 4,000 steps; labels = network passes", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def report() -> None:
    rows = headline_rows()
    table = markdown(rows)
    (RESULTS / "push_t_headline.md").write_text(table + "\n")
    plot(rows, ROOT / "docs" / "media" / "push_t_headline.png")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["all", "train", "evaluate", "latency", "report"])
    trained = [m for m in METHODS if m not in SAMPLER_VARIANTS]
    parser.add_argument("--methods", nargs="+", default=trained, choices=list(METHODS))
    parser.add_argument("--workers", type=int, default=16, help="environment processes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (the sweep)")
    parser.add_argument("--parallel", type=int, default=1, help="pairs run side by side")
    args = parser.parse_args()
    if args.seeds:
        seeds(args)
        return
    if set(args.methods) & set(SAMPLER_VARIANTS):
        parser.error(f"{sorted(SAMPLER_VARIANTS)} are evaluated only in the --seeds sweep")
    if args.stage in ("all", "train"):
        for method in args.methods:
            train(method, args.threads)
    if args.stage in ("all", "evaluate"):
        for method in args.methods:
            evaluate(method, args.workers, args.threads)
    if args.stage in ("all", "latency"):
        time_latency(args.threads)
    if args.stage in ("all", "report"):
        report()


if __name__ == "__main__":
    main()
