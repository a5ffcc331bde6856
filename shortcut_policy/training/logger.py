"""Metrics to a JSONL file in the run folder and, optionally, to wandb (offline by default)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MODES = ("offline", "online", "disabled")  # wandb's modes


class MetricLogger:
    """Appends one JSON object per call to ``metrics.jsonl``; mirrors to wandb unless disabled."""

    def __init__(
        self, run_dir: Path, mode: str | None, project: str, config: dict, enabled: bool = True
    ):
        mode = logging_mode(mode)
        if mode not in MODES:
            raise ValueError(f"logging.mode must be offline, online or disabled, got {mode!r}")
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.wandb = None
        if enabled and mode != "disabled":
            import wandb  # imported lazily: it is slow to import and not needed when disabled

            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb = wandb.init(
                project=project,
                mode=mode,
                dir=str(run_dir),
                config=config,
                resume="allow",
                id=_run_id(run_dir),
            )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def logging_mode(configured: str | None) -> str:
    """The wandb mode: the config's when it sets one, else ``$WANDB_MODE``, else offline."""
    if configured is not None:
        return configured
    return os.environ.get("WANDB_MODE") or "offline"


def _run_id(run_dir: Path) -> str:
    """A stable wandb id per run folder, so a resumed run appends to the same wandb run."""
    return "".join(c if c.isalnum() else "-" for c in str(Path(run_dir).resolve()))[-64:]
