"""The prefix-trained policy at three training seeds: what it costs at D = 0, what it buys at D = 4.

    python benchmarks/chunk_joins_seeds.py run --prefix-runs runs/push_t/prefix-meanflow-seed0 \\
        runs/push_t/prefix-meanflow-seed1 runs/push_t/prefix-meanflow-seed2
    python benchmarks/chunk_joins_seeds.py report

Per prefix-trained seed, ``benchmarks/chunk_joins.py``'s cells (1 pass, S = 8, no action noise,
200 episodes from seed 100000): ``none`` at D = 0 and ``none`` and ``prefix`` at D = 4, kept in
``docs/results/chunk_joins/seeds/``; a cell the main table already holds for the same checkpoint
is reused. The plain policy's three seeds are the three-seed table's MeanFlow runs
(``docs/results/headline_seeds/push_t_meanflow_seed*.json``: D = 0, 100 episodes from seed
100000), so D = 0 is compared on those 100 episodes, the first 100 of each 200-episode cell.
``report`` writes ``docs/results/chunk_joins_seeds.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from chunk_joins import OUT, ROOT, cell_path, run_cell

SEEDS_OUT = OUT / "seeds"
PLAIN = ROOT / "docs" / "results" / "headline_seeds" / "push_t_meanflow_seed{}.json"
CELLS = (("none", 0), ("none", 4), ("prefix", 4))  # (join, delay)
CELL_NAMES = ("none_d0", "none_d0_first100", "none_d4", "prefix_d4")


def seed_cell(label: str, seed: int, join: str, delay: int) -> Path:
    return cell_path(f"{label}-prefix-seed{seed}", join, delay, 0.0, folder=SEEDS_OUT)


def run(args) -> None:
    for seed, checkpoint in enumerate(args.prefix_runs):
        if args.only is not None and seed not in args.only:
            continue
        for join, delay in CELLS:
            main_cell = cell_path(f"{args.label}-prefix", join, delay, 0.0)
            mine = seed_cell(args.label, seed, join, delay)
            if not mine.is_file() and same_checkpoint(main_cell, checkpoint):
                SEEDS_OUT.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(main_cell, mine)
            policy = f"{args.label}-prefix-seed{seed}"
            run_cell(args, policy, checkpoint, join, delay, 0.0, folder=SEEDS_OUT)


def same_checkpoint(cell: Path, checkpoint: str) -> bool:
    return cell.is_file() and json.loads(cell.read_text())["checkpoint"] == checkpoint


def one_pass(path: Path, first: int | None = None) -> dict:
    """Success, score and join metrics of a report's 1-pass row (its ``first`` episodes)."""
    episodes = json.loads(path.read_text())["budgets"][0]["episodes"][:first]
    ratios = [e["boundary_ratio"] for e in episodes if e.get("boundary_ratio") is not None]
    return {
        "episodes": len(episodes),
        "success": statistics.fmean(e["success"] for e in episodes),
        "score": statistics.fmean(e["score"] for e in episodes),
        "boundary_ratio": statistics.fmean(ratios) if ratios else None,
    }


def summary(label: str) -> dict:
    """Per seed and across seeds: the prefix-trained cells and the plain D = 0 figure."""
    prefix = {}
    for seed in range(3):
        paths = {f"{j}_d{d}": seed_cell(label, seed, j, d) for j, d in CELLS}
        if all(p.is_file() for p in paths.values()):
            prefix[seed] = {name: one_pass(p) for name, p in paths.items()}
            prefix[seed]["none_d0_first100"] = one_pass(paths["none_d0"], first=100)
    plain = {s: one_pass(Path(str(PLAIN).format(s))) for s in range(3)}
    return {"prefix": prefix, "plain_d0_100": plain}


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f} (one seed)" if values else "n/a"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def report(label: str) -> None:
    found = summary(label)
    prefix, plain = found["prefix"], found["plain_d0_100"]
    seeds = sorted(prefix)
    column = {name: [prefix[s][name]["success"] for s in seeds] for name in CELL_NAMES}
    drop = [prefix[s]["prefix_d4"]["success"] - prefix[s]["none_d0"]["success"] for s in seeds]
    lines = [
        "| policy | seeds | D = 0, 100 episodes | D = 0, 200 | D = 4 none | D = 4 prefix "
        "| prefix D = 4 − D = 0 | boundary ratio D = 4, none / prefix |",
        "|---|---|---|---|---|---|---|---|",
        f"| MeanFlow (plain) | 0 1 2 | {spread([plain[s]['success'] for s in range(3)])} "
        "| – | – | – | – | – |",
    ]
    if seeds:
        ratios = "; ".join(
            f"{prefix[s]['none_d4']['boundary_ratio']:.2f} / "
            f"{prefix[s]['prefix_d4']['boundary_ratio']:.2f}"
            for s in seeds
        )
        lines.append(
            f"| MeanFlow, prefix-trained | {' '.join(map(str, seeds))} "
            f"| {spread(column['none_d0_first100'])} | {spread(column['none_d0'])} "
            f"| {spread(column['none_d4'])} | {spread(column['prefix_d4'])} "
            f"| {spread(drop)} | {ratios} |"
        )
    text = "\n".join(lines)
    results = ROOT / "docs" / "results"
    (results / "chunk_joins_seeds.md").write_text(text + "\n")
    (results / "chunk_joins_seeds.json").write_text(json.dumps(found, indent=2) + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["run", "report"])
    parser.add_argument("--label", default="meanflow", help="the plain policy's label")
    parser.add_argument("--prefix-runs", nargs="+", default=[], help="seed 0, 1, 2 run folders")
    parser.add_argument(
        "--only", type=int, nargs="+", help="run these seeds' cells only (e.g. 2 while 0, 1 run)"
    )
    parser.add_argument("--warm-t", type=float, default=0.5)  # unused by these cells' joins
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.stage == "run":
        run(args)
    report(args.label)


if __name__ == "__main__":
    main()
