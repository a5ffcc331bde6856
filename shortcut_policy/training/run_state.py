"""A training run's state and its checkpoints: what is saved, how it is restored and checked.

A checkpoint holds the weights, the EMA copy, the optimizer and the resolved config; no RNG
state (the noise of every step is seeded from the step) and nothing that depends on how many
processes trained it, so any number of ranks can resume it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import nn

from shortcut_policy.atomic import write_text
from shortcut_policy.checkpoints.files import (
    CheckpointError,
    CorruptCheckpoint,
    checkpoint_path,
    checkpoints_newest_first,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prefixed,
    read_meta,
    save_checkpoint,
    unprefixed,
)
from shortcut_policy.checkpoints.meta import check_training_meta
from shortcut_policy.models import model_as_built
from shortcut_policy.objectives import build_objective
from shortcut_policy.tasks import TaskData
from shortcut_policy.training import distributed
from shortcut_policy.training.distributed import Rank

CHECKPOINT_FORMAT = 1


@dataclass
class Run:
    """The mutable pieces of a training run (``loss_fn`` is the model + objective, DDP-wrapped
    when several ranks train; ``model`` is the bare network every rank holds a copy of)."""

    cfg: DictConfig
    data: TaskData
    model: nn.Module  # PolicyNetwork or ImageGenerator
    ema: nn.Module
    objective: Any
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    rank: Rank
    run_dir: Path
    step: int = 0
    best_score: float = float("-inf")
    teacher: nn.Module | None = None  # a separate teacher EMA (objective.teacher_decay > 0)


def save_run(run: Run, label: str | None = None, extra: dict | None = None) -> Path:
    """Checkpoint everything needed to continue or deploy: weights, EMA, optimizer, config.

    No RNG state: the noise of every step is seeded from the step. Rank 0 alone writes.
    Unlabelled checkpoints are ``step_<N>.safetensors`` (pruned to the newest few, used by
    resume); a ``label`` ("best", "last") writes ``<label>.safetensors``, never pruned.
    """
    folder = run.run_dir / "checkpoints"
    path = folder / f"{label}.safetensors" if label else checkpoint_path(folder, run.step)
    if not run.rank.is_main:
        return path
    optim_tensors, optim_plain = optimizer_to_tensors(run.optimizer)
    tensors = {
        **prefixed("model", run.model.state_dict()),
        **prefixed("ema", run.ema.state_dict()),
        **prefixed("optim", optim_tensors),
        **(prefixed("teacher", run.teacher.state_dict()) if run.teacher is not None else {}),
    }
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": run.step,
        "spec": run.data.spec,
        "config": OmegaConf.to_container(run.cfg, resolve=True),
        "optimizer": optim_plain,
        "label": label,
        "world_size": run.rank.world,
        **(extra or {}),
    }
    save_checkpoint(path, tensors, meta)
    if not label:
        prune_checkpoints(folder, run.cfg.keep_checkpoints)
    return path


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (labelled copies are never touched)."""
    steps = sorted(folder.glob("step_*.safetensors"))
    for old in steps[: max(0, len(steps) - keep)]:
        old.unlink()


def restore_newest_valid(run: Run, found: list[Path]) -> Path | None:
    """Restore the newest checkpoint of ``found`` (newest first) that is intact, warning about
    each damaged one skipped (a disk that filled up, a copy cut short); None if none is left."""
    for path in found:
        try:
            restore_run(run, path)
            return path
        except CorruptCheckpoint as err:
            warnings.warn(f"skipping a damaged checkpoint: {err}", stacklevel=2)
    if found:
        raise CheckpointError(
            f"every checkpoint in {found[0].parent} is damaged; start a new run_dir"
        )
    return None


def restore_run(run: Run, path: Path) -> None:
    """Load a checkpoint into ``run``; refuses one made for a different task or network."""
    tensors, meta = load_checkpoint(path)
    check_training_meta(meta, path)
    saved = meta["config"]
    for key in ("seed", "train.batch_size"):
        before, now = OmegaConf.select(OmegaConf.create(saved), key), OmegaConf.select(run.cfg, key)
        if before != now:
            raise CheckpointError(
                f"{path} was trained with {key}={before}, this run has {now}: the data order "
                "would change; resume with the same value or start a new run_dir"
            )
    # Both compare as built: fields added since the checkpoint take their old values.
    now_model = OmegaConf.to_container(run.cfg.model, resolve=True)
    same = {
        "model": model_as_built(saved["model"]) == model_as_built(now_model),
        "objective": build_objective(saved["objective"], saved=True) == run.objective,
    }
    for group, equal in same.items():
        if not equal:
            now = OmegaConf.to_container(run.cfg[group], resolve=True)
            raise CheckpointError(
                f"{path} was trained with {group}={saved[group]} but this run has {now}; "
                "resume with the same config or start a new run_dir"
            )
    if meta["spec"] != run.data.spec:
        raise CheckpointError(
            f"{path} was made for data {meta['spec']}, not {run.data.spec}; use the same task "
            "and dataset to resume"
        )
    try:
        run.model.load_state_dict(unprefixed("model", tensors))
        run.ema.load_state_dict(unprefixed("ema", tensors))
        if run.teacher is not None:
            run.teacher.load_state_dict(unprefixed("teacher", tensors))
        run.optimizer.load_state_dict(
            optimizer_from_tensors(unprefixed("optim", tensors), meta["optimizer"])
        )
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"{path}: its tensors do not fit this run's network or optimizer ({err}); "
            "start a new run_dir"
        ) from err
    run.step = meta["step"]


def prepare_run_dir(run: Run) -> None:
    """Resume from the newest checkpoint, or refuse to overwrite an existing run."""
    found = checkpoints_newest_first(run.run_dir / "checkpoints")
    if found and not run.cfg.resume:
        raise FileExistsError(
            f"{run.run_dir} already holds checkpoints (newest {found[0].name}); pass resume=true "
            "to continue it, or run_dir=... to start a new run"
        )
    newest = restore_newest_valid(run, found)
    if newest is not None:
        if run.rank.is_main:
            print(f"[train] resumed from {newest} at step {run.step} on {run.rank.world} rank(s)")
            drop_metrics_after(run.run_dir / "metrics.jsonl", run.step)
        best = run.run_dir / "checkpoints" / "best.safetensors"
        if best.is_file():
            run.best_score = read_meta(best).get("best_value", run.best_score)
    if run.rank.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(run.cfg, run.run_dir / "config.yaml", resolve=True)
        if HydraConfig.initialized():  # the command line, as typed
            OmegaConf.save(HydraConfig.get().overrides.task, run.run_dir / "overrides.yaml")
    with distributed.failures_named(run.rank, resume_hint(run)):
        distributed.barrier(run.rank)  # every rank has read the checkpoint before any writes one


def synced_weight_digests(run: Run) -> list[str]:
    """Every rank's digest of its weights and EMA; raises if the ranks have drifted apart.

    DDP keeps the weights equal by construction; this check (at checkpoints only) catches what
    would break it silently, such as a parameter that does not take part in the loss on one rank.
    """
    with distributed.failures_named(run.rank, resume_hint(run)):
        digests = distributed.gather_lists([weights_digest(run)], run.rank)
    if len(set(digests)) > 1:
        raise RuntimeError(
            f"ranks hold different weights at step {run.step} (digests {digests}); "
            "every parameter must take part in the loss on every rank"
        )
    return digests


def weights_digest(run: Run) -> str:
    """SHA-256 of the model's and the EMA's tensors, bit for bit."""
    digest = hashlib.sha256()
    for module in (run.model, run.ema, run.teacher):
        if module is None:
            continue
        for tensor in module.state_dict().values():
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def resume_hint(run: Run) -> str:
    return (
        f"Checkpoints so far are in {run.run_dir / 'checkpoints'}; rerun the same command with "
        "resume=true (on any number of processes) to continue."
    )


def drop_metrics_after(path: Path, step: int) -> None:
    """Remove log lines of steps after ``step`` (written after the checkpoint a run resumes),
    and a last line that a kill cut short. The file is replaced atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if (logged := logged_step(line)) is not None and logged <= step]
    if len(kept) != len(lines):
        write_text(path, "".join(kept))


def logged_step(line: str) -> int | None:
    """The step of one ``metrics.jsonl`` line, or None for a line cut short by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
