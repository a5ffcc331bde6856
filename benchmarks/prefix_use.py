"""Does a prefix-trained policy use its prefix? Open-loop, on held-out demonstration windows.

    python benchmarks/prefix_use.py --checkpoint runs/push_t/prefix-meanflow-seed0 \\
        --out docs/results/prefix_use_push_t.json

For windows of the validation episodes (the training run's own split, never trained on), one
pass from the same noise, told the demonstration's first ``k`` actions or nothing. If the
network uses the prefix, its action at position ``k`` lands nearer the demonstration's told
with the prefix than without it, and its jump from the last given action shrinks toward the
demonstration's own step. Errors in data units (Push-T: px on the 512-px board).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from shortcut_policy import ShortcutPolicy
from shortcut_policy.tasks import load_task_data


def validation_windows(config: dict, count: int, seed: int):
    """``(obs {key: (B, n_obs, ...)}, actions (B, H, Da))`` from the run's validation episodes
    (the trainer's own split and windows: ``load_task_data``)."""
    dataset = load_task_data(config["task"], config["dataset"]).val
    chosen = np.random.default_rng(seed).choice(len(dataset), min(count, len(dataset)), False)
    items = [dataset[int(i)] for i in chosen]
    obs = {key: np.stack([it["obs"][key].numpy() for it in items]) for key in items[0]["obs"]}
    return obs, np.stack([it["action"].numpy() for it in items])


def position_errors(prediction: np.ndarray, actions: np.ndarray, k: int) -> dict:
    """At position ``k``: distance to the demonstration and jump from its action ``k - 1``."""
    return {
        "error": float(np.linalg.norm(prediction[:, k] - actions[:, k], axis=-1).mean()),
        "jump": float(np.linalg.norm(prediction[:, k] - actions[:, k - 1], axis=-1).mean()),
    }


def measure(checkpoint: str, lengths: list[int], count: int, seed: int) -> dict:
    policy = ShortcutPolicy.from_pretrained(checkpoint, device="cpu")
    obs, actions = validation_windows(policy.meta["config"], count, seed)
    checked = policy.validate(obs, batched=True)
    noise = np.random.default_rng(seed + 1).standard_normal(actions.shape).astype(np.float32)
    free = policy.predict_checked(checked, steps=1, noise=noise)
    rows = []
    for k in lengths:
        mask = np.arange(actions.shape[1])[None].repeat(len(actions), 0) < k
        given = (mask, np.where(mask[..., None], actions, 0.0).astype(np.float32))
        told = policy.predict_checked(checked, steps=1, noise=noise, given=given)
        step = np.linalg.norm(actions[:, k] - actions[:, k - 1], axis=-1).mean()
        rows.append(
            {
                "k": k,
                "without_prefix": position_errors(free, actions, k),
                "with_prefix": position_errors(told, actions, k),
                "demonstration_step": float(step),
            }
        )
    return {"checkpoint": checkpoint, "windows": len(actions), "steps": 1, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 3, 5, 7])
    parser.add_argument("--windows", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    found = measure(args.checkpoint, args.lengths, args.windows, args.seed)
    print("| k | error without / with prefix | jump without / with | demonstration step |")
    print("|---|---|---|---|")
    for row in found["rows"]:
        off, on = row["without_prefix"], row["with_prefix"]
        print(
            f"| {row['k']} | {off['error']:.2f} / {on['error']:.2f} | {off['jump']:.2f} / "
            f"{on['jump']:.2f} | {row['demonstration_step']:.2f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(found, indent=2) + "\n")


if __name__ == "__main__":
    main()
