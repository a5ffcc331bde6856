"""Sample quality of an image model without downloaded weights.

FID needs Inception weights, which cannot be downloaded here. Instead a small classifier is
trained on the same training images (seconds on a CPU); the Fréchet distance is computed between
its penultimate-layer features of real and generated images, and its accuracy on class-
conditional samples says whether they show the class they were asked for. The numbers are
comparable between models evaluated with the same classifier, not with published FIDs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn


class FeatureClassifier(nn.Module):
    """Three convolutions and a linear head: ``(B, C, H, W)`` in [-1, 1] -> 10 logits."""

    def __init__(self, channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(32, width, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 20, seed: int = 0
) -> FeatureClassifier:
    """Fit on ``images (N, C, H, W)`` in [-1, 1] with a fixed seed; returned in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = FeatureClassifier(images.shape[1], num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(128):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def features_and_predictions(
    model: FeatureClassifier, images: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, F) float64, predicted labels (N,))``."""
    feats = torch.cat([model.features(chunk) for chunk in images.split(512)])
    return feats.double().numpy(), model.head(feats).argmax(-1).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a (N, F)`` and ``b (M, F)``."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # nearly singular product: regularise, as FID code does
        offset = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root))
    return float(max(value, 0.0))
