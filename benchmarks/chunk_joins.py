"""Push-T under delay: success, score, boundary ratio and jerk per join method and delay.

    python benchmarks/chunk_joins.py calibrate --checkpoint data/pretrained/push_t --noise 2 4 8
    python benchmarks/chunk_joins.py run --checkpoint data/pretrained/push_t --label meanflow \\
        --prefix-checkpoint runs/push_t/prefix-meanflow-seed0 --noise 0 8
    python benchmarks/chunk_joins.py run --checkpoint tests/fixtures/push_t_shortcut \\
        --label shortcut
    python benchmarks/chunk_joins.py report

Every cell is one documented command, ``python -m shortcut_policy.rollout steps=1 delay=D
execute=8 join=J action_noise=N ...`` on seeds 100000+, and its report is kept as
``docs/results/chunk_joins/<policy>_<join>_d<D>_noise<N>.json`` as soon as it exists; a cell
already written is skipped, so a killed sweep resumes. ``none``, ``ensemble`` and ``warm``
(``--warm-t``, 0.5 by default) run on the plain policy (named ``--label`` in the table and the
file names), ``prefix`` on the prefix-trained one, labelled ``<label>-prefix`` (and ``none`` on
it too: what the prefix costs when it is not used). ``calibrate`` runs
``delay=0 join=none`` at each noise level, to choose the std at which the plain policy loses
about 0.1 success. ``report`` writes the table (``docs/results/chunk_joins.md``) and the plot
of success against delay (``docs/media/chunk_joins.png``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "chunk_joins"
TICK_MS = 100  # Push-T runs at 10 Hz
# Table names of the policy labels used so far (any other label is shown as it is).
POLICY_NAMES = {
    "meanflow": "MeanFlow (shipped)",
    "meanflow-prefix": "MeanFlow, prefix-trained",
    "shortcut-prefix": "shortcut, prefix-trained",
}
LINESTYLES = {"meanflow": "-", "shortcut": "--", "meanflow-prefix": ":", "shortcut-prefix": "-."}


def cell_path(
    policy: str, join: str, delay: int, noise: float, warm_t: float = 0.5, folder: Path = OUT
) -> Path:
    if join == "warm" and warm_t != 0.5:
        join = f"warm{warm_t:g}"
    return folder / f"{policy}_{join}_d{delay}_noise{noise:g}.json"


def run_cell(
    args, policy: str, checkpoint: str, join: str, delay: int, noise: float, folder: Path = OUT
) -> Path:
    """Roll out one cell unless its JSON exists; returns the JSON's path."""
    path = cell_path(policy, join, delay, noise, args.warm_t, folder)
    if path.is_file():
        return path
    out = ROOT / "runs" / "rollout" / "chunk_joins" / path.stem
    command = [sys.executable, "-m", "shortcut_policy.rollout", f"checkpoint={checkpoint}"]
    command += ["steps=1", f"delay={delay}", "execute=8", f"join={join}", f"warm_t={args.warm_t}"]
    command += [f"action_noise={noise}", f"n_episodes={args.episodes}"]
    command += [f"workers={args.workers}", f"threads={args.threads}", "latency_calls=5"]
    command += ["throughput_batch=4", "progress=false", f"out_dir={out}"]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    folder.mkdir(parents=True, exist_ok=True)
    report = json.loads((out / "report.json").read_text())
    path.write_text(json.dumps({"policy": policy, **report}, indent=2) + "\n")
    return path


def cells(args) -> list[tuple[str, str, str]]:
    """``(policy label, checkpoint, join)`` for every method in the table."""
    plan = [(args.label, args.checkpoint, join) for join in ("none", "ensemble", "warm")]
    if args.prefix_checkpoint:
        prefix_label = f"{args.label}-prefix"
        plan += [(prefix_label, args.prefix_checkpoint, join) for join in ("prefix", "none")]
    return plan


def rows() -> list[dict]:
    found = []
    for path in sorted(OUT.glob("*.json")):
        report = json.loads(path.read_text())
        budget, execution = report["budgets"][0], report["execution"]
        found.append(
            {
                "policy": report["policy"],
                "join": join_label(execution),
                "delay": execution["delay"],
                "noise": execution["action_noise"],
                "episodes": budget["n_episodes"],
                "success": budget["success_rate"],
                "ci": budget["success_ci95"],
                "score": budget["mean_score"],
                **budget["joins"],
            }
        )
    return sorted(found, key=lambda r: (r["noise"], r["policy"], r["join"], r["delay"]))


def join_label(execution: dict) -> str:
    """The join's name; ``warm`` with its start time."""
    if execution["join"] != "warm":
        return execution["join"]
    return f"warm (t = {execution.get('warm_t', 0.5):g})"


def figure(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def prefix_error(row: dict) -> str:
    """With ``join=prefix`` the committed actions are the chunk's given positions (the network
    keeps them, then they are written in): no error to measure."""
    return "given" if row["join"] == "prefix" else figure(row["prefix_error"])


def report() -> None:
    table = [
        "| policy | join | action noise (px) | delay (ticks / ms) | episodes | success [95% CI] "
        "| mean best score | boundary ratio | jerk (px) | prefix error (px) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows():
        table.append(
            f"| {POLICY_NAMES.get(r['policy'], r['policy'])} | {r['join']} | {r['noise']:g} "
            f"| {r['delay']} / "
            f"{r['delay'] * TICK_MS} | {r['episodes']} | {r['success']:.2f} "
            f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] | {r['score']:.3f} "
            f"| {figure(r['boundary_ratio'])} | {figure(r['jerk'])} "
            f"| {prefix_error(r)} |"
        )
    text = "\n".join(table)
    (ROOT / "docs" / "results" / "chunk_joins.md").write_text(text + "\n")
    plot(rows(), ROOT / "docs" / "media" / "chunk_joins.png")
    print(text)


def delays_at(found: list[dict], noise: float) -> int:
    return len({r["delay"] for r in found if r["noise"] == noise})


def plot(found: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Noise levels measured at one delay only are the calibration's: they are in the table.
    noises = sorted(n for n in {r["noise"] for r in found} if delays_at(found, n) > 1)
    fig, axes = plt.subplots(
        len(noises), 1, figsize=(9.5, 3.8 * len(noises)), dpi=130, squeeze=False
    )
    for ax, noise in zip(axes[:, 0], noises, strict=True):
        methods = sorted({(r["policy"], r["join"]) for r in found if r["noise"] == noise})
        for policy, join in methods:
            mine = [
                r for r in found if (r["policy"], r["join"], r["noise"]) == (policy, join, noise)
            ]
            x = [r["delay"] * TICK_MS for r in mine]
            y = [r["success"] for r in mine]
            err = [
                [r["success"] - r["ci"][0] for r in mine],
                [r["ci"][1] - r["success"] for r in mine],
            ]
            name = POLICY_NAMES.get(policy, policy)
            style = LINESTYLES.get(policy, "-")
            ax.errorbar(x, y, yerr=err, marker="o", ls=style, capsize=2, label=f"{name}, {join}")
        ax.set_xlabel("delay before a chunk takes over (ms at 10 Hz)")
        ax.set_ylabel("success, 1 pass")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Push-T, action noise {noise:g} px", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["calibrate", "run", "report"])
    parser.add_argument("--checkpoint", default="data/pretrained/push_t")
    parser.add_argument("--label", default="meanflow", help="the plain policy's name in the table")
    parser.add_argument("--prefix-checkpoint", default=None)
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0])
    parser.add_argument("--warm-t", type=float, default=0.5, help="join=warm's start time")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.stage == "calibrate":
        for noise in args.noise:
            run_cell(args, args.label, args.checkpoint, "none", 0, noise)
    elif args.stage == "run":
        for noise in args.noise:  # delay-major: comparable cells arrive together
            for delay in args.delays:
                for policy, checkpoint, join in cells(args):
                    run_cell(args, policy, checkpoint, join, delay, noise)
    report()


if __name__ == "__main__":
    main()
