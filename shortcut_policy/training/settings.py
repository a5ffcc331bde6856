"""The training config's values, checked by type and range before anything is created.

Hydra hands the trainer whatever the command line said: ``train.steps=abc`` arrives as a string,
``train.batch_size=0`` as a zero that would divide later. :func:`check_train_config` reads every
setting the loop uses against :data:`SETTINGS` and raises one :class:`ConfigError` that lists
each bad value with what it should be, before a run folder, a wandb run or a dataset exists.
The network, objective and task groups are checked where they are built.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from shortcut_policy.training.logger import MODES


class ConfigError(ValueError):
    """A setting with the wrong type or out of its range (the message names each one)."""


@dataclass(frozen=True)
class Setting:
    """One setting: its kind and its inclusive range (or its choices)."""

    kind: str  # "int", "float", "bool", "choice", "ints" (a non-empty list of ints), "floats2"
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    high_open: bool = False  # the range excludes ``high``

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid, or None."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "choice":
            return None if value in self.choices else f"must be one of {list(self.choices)}"
        if self.kind in ("ints", "floats2"):
            if not isinstance(value, list | tuple) or not value:
                return f"must be a list, e.g. {'[1, 4]' if self.kind == 'ints' else '[0.9, 0.99]'}"
            if self.kind == "floats2" and len(value) != 2:
                return "must be a list of two numbers"
            kind = "int" if self.kind == "ints" else "float"
            element = Setting(kind, self.low, self.high, high_open=self.high_open)
            problems = [element.problem(v) for v in value]
            return next((f"every entry {p}" for p in problems if p), None)
        return self._number_problem(value)

    def _number_problem(self, value: Any) -> str | None:
        is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        is_number = is_int or (isinstance(value, numbers.Real) and not isinstance(value, bool))
        if self.kind == "int" and not is_int:
            return f"must be an integer{self._range()}"
        if not is_number:
            return f"must be a number{self._range()}"
        too_low = self.low is not None and value < self.low
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if too_low or too_high or value != value:  # value != value: NaN
            return f"must be {'an integer' if self.kind == 'int' else 'a number'}{self._range()}"
        return None

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            close = ")" if self.high_open else "]"
            return f" in [{self.low:g}, {self.high:g}{close}"
        if self.low is not None:
            return f" >= {self.low:g}"
        return ""


SETTINGS: dict[str, Setting] = {
    "seed": Setting("int", 0),
    "threads": Setting("int", 0),
    "resume": Setting("bool"),
    "train.steps": Setting("int", 1),
    "train.batch_size": Setting("int", 1),
    "train.lr": Setting("float", 1e-12),
    "train.lr_floor": Setting("float", 0.0, 1.0),
    "train.betas": Setting("floats2", 0.0, 1.0, high_open=True),
    "train.weight_decay": Setting("float", 0.0),
    "train.warmup_steps": Setting("int", 0),
    "train.grad_clip": Setting("float", 1e-12),
    "train.ema_decay": Setting("float", 0.0, 1.0, high_open=True),
    "train.num_workers": Setting("int", 0),
    "train.device_data": Setting("bool"),
    "train.precision": Setting("choice", choices=("auto", "fp32", "bf16")),
    "train.max_minutes": Setting("float", 0.0),
    "distributed.timeout_s": Setting("float", 1.0),
    "val_every": Setting("int", 0),
    "val_batches": Setting("int", 1),
    "eval_every": Setting("int", 0),
    "eval_steps": Setting("ints", 1),
    "eval_episodes": Setting("int", 1),
    "checkpoint_every": Setting("int", 1),
    "keep_checkpoints": Setting("int", 1),
    "logging.mode": Setting("choice", choices=(None, *MODES)),
    "logging.log_every": Setting("int", 1),
    "logging.progress": Setting("bool"),
}


def check_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming every setting of :data:`SETTINGS` that is missing,
    of the wrong type or out of range."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    problems = []
    for path, setting in SETTINGS.items():
        found, value = _lookup(plain, path)
        if not found:
            problems.append(f"{path} is missing")
            continue
        problem = setting.problem(value)
        if problem:
            problems.append(f"{path}={value!r} {problem}")
    if problems:
        raise ConfigError("bad training config (nothing was created):\n  " + "\n  ".join(problems))


def _lookup(config: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node
