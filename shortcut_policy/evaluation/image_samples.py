"""Class-conditional samples of an image model: grids (PNG) and quality per step budget."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from einops import rearrange

from shortcut_policy.data.images import ImageDataset, to_uint8
from shortcut_policy.evaluation.image_quality import (
    FeatureClassifier,
    features_and_predictions,
    frechet_distance,
    train_classifier,
)
from shortcut_policy.models.image_net import ImageGenerator
from shortcut_policy.objectives.guidance import Guided


@torch.no_grad()
def sample_images(
    network: ImageGenerator,
    objective: Any,
    labels: torch.Tensor,
    steps: int,
    seed: int = 0,
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """Images ``(B, C, H, W)`` in [-1, 1] for ``labels (B,)`` with ``steps`` network passes
    (twice that at the finest step size when guided)."""
    device = next(network.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn(network.sample_shape(len(labels)), generator=generator, device=device)
    net = Guided(network, guidance_scale, objective.finest_d)
    return objective.sample(net, noise, labels.to(device), steps, generator)


def save_grid(path: str | os.PathLike, images: np.ndarray, rows: int, upscale: int = 4) -> Path:
    """uint8 ``images (B, C, H, W)`` as a PNG grid of ``rows`` rows, each image framed by a
    1-pixel grey border, pixels enlarged ``upscale`` times: ``rows * (H + 2) * upscale`` high."""
    framed = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=96)
    grid = rearrange(framed, "(r k) c h w -> (r h) (k w) c", r=rows)
    grid = grid.repeat(upscale, axis=0).repeat(upscale, axis=1)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, grid)
    return path


# Keyed by the dataset object itself (not its id(), which a later dataset may reuse), and
# dropped with it.
_CLASSIFIERS: weakref.WeakKeyDictionary[ImageDataset, FeatureClassifier] = (
    weakref.WeakKeyDictionary()
)


def classifier_for(data: ImageDataset, num_classes: int) -> FeatureClassifier:
    """The feature classifier of a training set (trained once per dataset, fixed seed)."""
    if data not in _CLASSIFIERS:
        _CLASSIFIERS[data] = train_classifier(data.images, data.labels, num_classes)
    return _CLASSIFIERS[data]


def evaluate_image_model(
    network: ImageGenerator,
    objective: Any,
    data: Any,
    steps_list: list[int],
    out_dir: str | os.PathLike | None = None,
    per_class: int = 100,
    guidance_scale: float | None = None,
) -> dict[str, float]:
    """Fréchet distance (classifier features) and class accuracy of samples, per budget.

    ``per_class`` samples of every class share the same noise across budgets; a 10 x 10 grid
    (one row per class) is written per budget when ``out_dir`` is given.
    """
    spec = network.spec
    scale = spec.get("guidance_scale", 1.0) if guidance_scale is None else guidance_scale
    n_classes = spec["num_classes"]
    classifier = classifier_for(data.train, n_classes)
    real, _ = features_and_predictions(classifier, data.train.images)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    metrics: dict[str, float] = {}
    if data.val is not None:  # references: the classifier itself, and held-out real images
        val_feats, val_predicted = features_and_predictions(classifier, data.val.images)
        metrics["classifier_val_accuracy"] = float(
            (val_predicted == data.val.labels.numpy()).mean()
        )
        metrics["fd_val_images"] = frechet_distance(real, val_feats)
    for steps in steps_list:
        images = sample_images(network, objective, labels, steps, 0, scale).cpu()
        feats, predicted = features_and_predictions(classifier, images)
        metrics[f"fd@{steps}"] = frechet_distance(real, feats)
        metrics[f"accuracy@{steps}"] = float((predicted == labels.numpy()).mean())
        if out_dir is not None:
            first = images.view(n_classes, per_class, *images.shape[1:])[:, :10]
            save_grid(
                Path(out_dir) / f"samples_steps{steps}.png",
                to_uint8(first.flatten(0, 1)),
                n_classes,
            )
    return metrics
