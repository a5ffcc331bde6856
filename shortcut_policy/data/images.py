"""Labelled image sets in zarr: ``image (N, C, H, W) uint8`` and ``label (N,) int64``.

The built-in set is scikit-learn's handwritten digits (1,797 images of 8 x 8 pixels, shipped
inside its wheel: nothing is downloaded), optionally upsampled. Training sees images in [-1, 1].
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from shortcut_policy.atomic import replace_folder
from shortcut_policy.data.replay_buffer import DatasetError


def make_digits_store(path: str | os.PathLike, image_size: int = 8) -> None:
    """Write scikit-learn's digits to ``path`` (atomically), upsampled to ``image_size``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images / 16.0).float()[:, None]  # (N, 1, 8, 8) in [0, 1]
    if image_size != images.shape[-1]:
        images = torch.nn.functional.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    write_image_store(path, pixels, digits.target.astype(np.int64), source="sklearn digits")


def write_image_store(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, source: str
) -> None:
    """``images (N, C, H, W) uint8`` and ``labels (N,)`` to a zarr group, written atomically."""
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"need uint8 images (N, C, H, W) and N labels, got {images.shape}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(str(tmp), mode="w")
    group.create_array("image", data=images, chunks=(256, *images.shape[1:]))
    group.create_array("label", data=labels, chunks=(len(labels),))
    group.attrs["source"] = source
    replace_folder(tmp, path)


def read_image_store(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, C, H, W), labels int64 (N,))``; a clear error for a broken store."""
    try:
        group = zarr.open_group(str(path), mode="r")
        images, labels = group["image"][:], group["label"][:]
    except (FileNotFoundError, KeyError) as err:
        raise DatasetError(
            f"{path} is not an image store (needs arrays 'image' (N, C, H, W) uint8 and "
            f"'label' (N,)): {err}; regenerate it by deleting it and training again"
        ) from err
    if images.ndim != 4 or len(images) != len(labels):
        raise DatasetError(f"{path}: image {images.shape} and label {labels.shape} do not match")
    return images, labels.astype(np.int64)


class ImageDataset(Dataset):
    """Items ``{"image": (C, H, W) float32 in [-1, 1], "label": int64}``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images).float() / 127.5 - 1.0
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "label": self.labels[index]}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Model-space images ``(B, C, H, W)`` in [-1, 1] -> uint8 pixels, clipped."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
