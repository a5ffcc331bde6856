"""Sample a trained image model at several step budgets: PNG grids and, optionally, quality.

    python -m shortcut_policy.sample_images --checkpoint runs/digits/shortcut-dit_tiny-seed0 \
        --steps 1 2 4 8 128 --out runs/digits/samples --metrics

Writes ``samples_steps<N>.png`` (one row per class) per budget; with ``--metrics``, also the
Fréchet distance in a small classifier's features and that classifier's accuracy on the
samples (see ``evaluation/image_quality.py``) to ``quality.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shortcut_policy.checkpoints.files import CheckpointError
from shortcut_policy.cli import user_errors
from shortcut_policy.data.images import to_uint8
from shortcut_policy.evaluation.image_samples import (
    evaluate_image_model,
    sample_images,
    save_grid,
)
from shortcut_policy.policy import resolve_policy_path
from shortcut_policy.policy.pretrained import load_policy_network
from shortcut_policy.tasks import load_task_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="file or training run folder")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 128])
    parser.add_argument("--out", required=True, help="folder for the grids and quality.json")
    parser.add_argument("--guidance", type=float, default=None, help="default: the task's")
    parser.add_argument("--per-class", type=int, default=100, help="samples per class")
    parser.add_argument("--metrics", action="store_true", help="Fréchet distance + accuracy")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with user_errors("sample_images"):
        sample(args)


def sample(args: argparse.Namespace) -> None:
    """Grids per budget, or the quality report with ``--metrics``."""
    path = resolve_policy_path(args.checkpoint)
    network, objective, meta = load_policy_network(path, device=args.device)
    if meta["spec"].get("kind") != "images":
        raise CheckpointError(
            f"{path} is a {meta['spec']['task']} policy, not an image model: roll it out with "
            "python -m shortcut_policy.rollout checkpoint=..."
        )
    out = Path(args.out)
    if args.metrics:
        config = meta["config"]
        data = load_task_data(config["task"], config["dataset"])
        started = time.perf_counter()
        metrics = evaluate_image_model(
            network, objective, data, args.steps, out, args.per_class, args.guidance
        )
        report = {
            "checkpoint": str(path),
            "objective": objective.name,
            "train_step": meta["step"],
            "guidance": args.guidance or meta["spec"].get("guidance_scale", 1.0),
            "per_class": args.per_class,
            "seconds": time.perf_counter() - started,
            "metrics": metrics,
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "quality.json").write_text(json.dumps(report, indent=2))
        for key, value in metrics.items():
            print(f"{key}: {value:.4f}")
        return
    n_classes = network.spec["num_classes"]
    labels = torch.arange(n_classes).repeat_interleave(10)
    scale = meta["spec"].get("guidance_scale", 1.0) if args.guidance is None else args.guidance
    for steps in args.steps:
        images = sample_images(network, objective, labels, steps, 0, scale)
        print(save_grid(out / f"samples_steps{steps}.png", to_uint8(images), n_classes))


if __name__ == "__main__":
    main()
