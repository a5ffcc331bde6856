"""Checkpoints as one safetensors file: tensors plus plain JSON metadata, written atomically.

Loading never executes code from the file: safetensors holds raw tensors and a string header, and
anything else (a pickle from ``torch.save``, a truncated write) is refused with a clear error.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from shortcut_policy.atomic import staged

META_KEY = "shortcut_policy"
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.safetensors$")

POLICY_FILE = "policy.safetensors"  # what save_pretrained writes in its folder


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the fix."""


class NoCheckpoint(CheckpointError, FileNotFoundError):
    """No checkpoint to default to: no training run of the task and no shipped policy."""


class CorruptCheckpoint(CheckpointError):
    """A checkpoint file that is truncated or damaged (an earlier one may still be good)."""


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and JSON-serialisable ``meta`` to ``path`` atomically.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder, flushed to disk, then renamed over ``path``.
    """
    # safetensors needs contiguous tensors that share no memory.
    plain = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    with staged(path) as tmp:
        save_file(plain, str(tmp), metadata={META_KEY: json.dumps(meta)})


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(tensors, meta)``; raises :class:`CheckpointError` for anything but our format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header. Its first byte
    # may well be 0x80 or the bytes "PK", so only a file without "{" at offset 8 can be a
    # pickle (0x80 ...) or a zip (PK...) written by torch.save.
    is_safetensors = len(head) == 9 and head[8:9] == b"{"
    if not is_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise CheckpointError(
            f"{path} is a pickle or zip (torch.save) file; shortcut_policy loads only its own "
            "safetensors checkpoints, because unpickling can run arbitrary code"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpoint(
            f"{path} is truncated or corrupt ({err}); use an earlier checkpoint from the same run"
        ) from err
    if META_KEY not in header:
        raise CheckpointError(f"{path} is a safetensors file but not a shortcut_policy checkpoint")
    return tensors, parse_meta(header[META_KEY], path)


def parse_meta(text: str, path: object) -> dict[str, Any]:
    """The metadata JSON object, or a :class:`CheckpointError` naming the file."""
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{path}: its metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is {type(meta).__name__}, not a JSON object")
    return meta


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Only the JSON metadata of a checkpoint (tensors are not read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {})[META_KEY]
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable shortcut_policy checkpoint ({err})"
        ) from err
    return parse_meta(text, path)


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.safetensors"


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step in ``folder`` (temporary files ignored)."""
    found = checkpoints_newest_first(folder)
    return found[0] if found else None


def checkpoints_newest_first(folder: str | os.PathLike) -> list[Path]:
    """``step_*.safetensors`` files in ``folder``, highest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(match.group(1)), folder / name)
        for name in os.listdir(folder)
        if (match := CHECKPOINT_PATTERN.match(name))
    ]
    return [path for _, path in sorted(found, reverse=True)]


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{prefix.key: tensor}`` for packing several state dicts into one file."""
    return {f"{prefix}.{key}": value for key, value in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`prefixed`: the entries under ``prefix``, with the prefix removed."""
    start = len(prefix) + 1
    return {key[start:]: value for key, value in tensors.items() if key.startswith(prefix + ".")}


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors and plain JSON data."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    """Rebuild an optimizer state dict from :func:`optimizer_to_tensors` output."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *plain["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}
