"""Ship a training run's policy in ``data/pretrained/<task>``, so the task's rollout works after
a clone.

    python -m shortcut_policy.rollout task=lift checkpoint=runs/lift/RUN steps=1 \\
        n_episodes=100 out_dir=runs/rollout/lift_ship
    python benchmarks/ship_policy.py --checkpoint runs/lift/RUN \\
        --report runs/rollout/lift_ship/report.json --out data/pretrained/lift

The weights are stored in float16 (half the file; loading casts them back to float32) with the
rollout's success per budget, so ``steps="auto"`` never picks a budget that scored below 1 pass.
Check the written file with the same rollout command on ``checkpoint=data/pretrained/<task>``
and put both figures in ``data/pretrained/README.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def ship(checkpoint: str | Path, report: str | Path, out: str | Path) -> Path:
    """Write ``checkpoint``'s policy to ``out/policy.safetensors`` in float16 with ``report``'s
    success per budget; returns the file written."""
    from shortcut_policy import ShortcutPolicy

    policy = ShortcutPolicy.from_pretrained(checkpoint, device="cpu")
    measured = json.loads(Path(report).read_text())
    return policy.save_pretrained(out, weights_dtype=torch.float16, report=measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    parser.add_argument("--report", required=True, help="its rollout report.json")
    parser.add_argument("--out", required=True, help="data/pretrained/<task>")
    args = parser.parse_args()
    print(f"wrote {ship(args.checkpoint, args.report, args.out)}")


if __name__ == "__main__":
    main()
