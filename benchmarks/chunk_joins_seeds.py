"""The prefix-trained and the plain policy at three training seeds, at D = 0 and D = 4.

    python benchmarks/chunk_joins_seeds.py run \\
        --prefix-runs runs/push_t/prefix-meanflow-seed0 runs/push_t/prefix-meanflow-seed1 \\
            runs/push_t/prefix-meanflow-seed2 \\
        --plain-runs runs/push_t/plain-meanflow-seed0 runs/push_t/plain-meanflow-seed1 \\
            data/pretrained/push_t
    python benchmarks/chunk_joins_seeds.py report

Per training seed, ``benchmarks/chunk_joins.py``'s cells (1 pass, S = 8, no action noise, 200
episodes from seed 100000), kept in ``docs/results/chunk_joins/seeds/``: for the prefix-trained
policy ``none`` at D = 0 and ``none`` and ``prefix`` at D = 4, for the plain one ``none`` at
D = 0 and D = 4. A cell the main table already holds for the same checkpoint is reused. The
plain seeds' D = 0 figure of the three-seed table (``docs/results/headline_seeds/
push_t_meanflow_seed*.json``, 100 episodes from seed 100000) is shown beside the first 100
episodes of each prefix seed's D = 0 cell. ``report`` writes
``docs/results/chunk_joins_seeds.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from chunk_joins import OUT, ROOT, cell_path, run_cell

SEEDS_OUT = OUT / "seeds"
HEADLINE = ROOT / "docs" / "results" / "headline_seeds" / "push_t_meanflow_seed{}.json"
# (join, delay) cells per family; a family's label is the plain label plus its suffix.
FAMILIES = {
    "prefix": ("-prefix", (("none", 0), ("none", 4), ("prefix", 4))),
    "plain": ("", (("none", 0), ("none", 4))),
}


def seed_cell(label: str, seed: int, join: str, delay: int) -> Path:
    return cell_path(f"{label}-seed{seed}", join, delay, 0.0, folder=SEEDS_OUT)


def run(args) -> None:
    for family, runs in (("prefix", args.prefix_runs), ("plain", args.plain_runs)):
        suffix, cells = FAMILIES[family]
        label = args.label + suffix
        for seed, checkpoint in enumerate(runs):
            if args.only is not None and seed not in args.only:
                continue
            for join, delay in cells:
                main_cell = cell_path(label, join, delay, 0.0)
                mine = seed_cell(label, seed, join, delay)
                if not mine.is_file() and same_checkpoint(main_cell, checkpoint):
                    SEEDS_OUT.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(main_cell, mine)
                run_cell(args, f"{label}-seed{seed}", checkpoint, join, delay, 0.0, SEEDS_OUT)


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


def family_cells(label: str, family: str) -> dict:
    """``{seed: {"<join>_d<delay>": one_pass(...)}}`` for the seeds with every cell."""
    suffix, cells = FAMILIES[family]
    found = {}
    for seed in range(3):
        paths = {f"{j}_d{d}": seed_cell(label + suffix, seed, j, d) for j, d in cells}
        if all(p.is_file() for p in paths.values()):
            found[seed] = {name: one_pass(p) for name, p in paths.items()}
            found[seed]["none_d0_first100"] = one_pass(paths["none_d0"], first=100)
    return found


def summary(label: str) -> dict:
    return {
        "prefix": family_cells(label, "prefix"),
        "plain": family_cells(label, "plain"),
        "plain_d0_100_headline": {s: one_pass(Path(str(HEADLINE).format(s))) for s in range(3)},
    }


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f} (one seed)" if values else "–"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def family_row(name: str, found: dict, d4_join: str) -> str:
    seeds = sorted(found)

    def column(cell: str, key: str = "success") -> list[float]:
        return [found[s][cell][key] for s in seeds]

    drop = [found[s][f"{d4_join}_d4"]["success"] - found[s]["none_d0"]["success"] for s in seeds]
    return (
        f"| {name} | {' '.join(map(str, seeds))} | {spread(column('none_d0_first100'))} "
        f"| {spread(column('none_d0'))} | {spread(column('none_d4'))} "
        f"| {spread(column('prefix_d4')) if d4_join == 'prefix' else '–'} | {spread(drop)} "
        f"| {spread(column('none_d4', 'boundary_ratio'))} "
        f"| {spread(column(f'{d4_join}_d4', 'boundary_ratio'))} |"
    )


def report(label: str) -> None:
    found = summary(label)
    headline = found["plain_d0_100_headline"]
    lines = [
        "| policy | seeds | D = 0, first 100 episodes | D = 0 | D = 4, none | D = 4, prefix "
        "| D = 4 − D = 0 (prefix: with its join) | boundary ratio D = 4, none | … with the join |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| MeanFlow, plain (three-seed table) | 0 1 2 "
        f"| {spread([headline[s]['success'] for s in range(3)])} | – | – | – | – | – | – |",
    ]
    if found["plain"]:
        lines.append(family_row("MeanFlow, plain", found["plain"], "none"))
    if found["prefix"]:
        lines.append(family_row("MeanFlow, prefix-trained", found["prefix"], "prefix"))
    text = "\n".join(lines)
    results = ROOT / "docs" / "results"
    (results / "chunk_joins_seeds.md").write_text(text + "\n")
    (results / "chunk_joins_seeds.json").write_text(json.dumps(found, indent=2) + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["run", "report"])
    parser.add_argument("--label", default="meanflow", help="the plain policy's label")
    parser.add_argument("--prefix-runs", nargs="+", default=[], help="seed 0, 1, 2 checkpoints")
    parser.add_argument("--plain-runs", nargs="+", default=[], help="seed 0, 1, 2 checkpoints")
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
