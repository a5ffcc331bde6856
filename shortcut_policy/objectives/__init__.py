"""Training objectives. Each takes the network as an argument: ``net(x, t, d, cond)``.

Every objective follows the contract in :mod:`contract` (``loss``, ``sample``, ``budget``,
``finest_d``, ``teacher_rows``, ``teacher_decay``) and works on any tensor shape ``(B, ...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shortcut_policy.objectives.contract import Objective
from shortcut_policy.objectives.ddpm import DDPM
from shortcut_policy.objectives.flow import FlowMatching
from shortcut_policy.objectives.meanflow import MeanFlow
from shortcut_policy.objectives.sampling import SAMPLERS
from shortcut_policy.objectives.shortcut import Shortcut

OBJECTIVES = {"shortcut": Shortcut, "flow": FlowMatching, "ddpm": DDPM, "meanflow": MeanFlow}

# Fields added after checkpoints were first written, with the values that reproduce how those
# checkpoints were trained: a config saved without them means these, not today's defaults.
ADDED_FIELDS = {"shortcut": {"coarse_share": 0.0, "teacher_decay": 0.0, "target_guidance": 1.0}}


def build_objective(cfg: Mapping[str, Any], saved: bool = False) -> Objective:
    """Objective from a config mapping with a ``name`` field and the class's attributes.

    ``saved=True`` reads a config from a checkpoint: fields it lacks take their old values
    (:data:`ADDED_FIELDS`), so a resumed run is compared with how it was really trained.
    """
    fields = dict(cfg)
    name = fields.pop("name", None)
    if saved:
        fields = {**ADDED_FIELDS.get(name, {}), **fields}
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    try:
        return OBJECTIVES[name](**fields)
    except TypeError as err:
        raise ValueError(f"bad field in objective config {dict(cfg)}: {err}") from err


def with_sampler(objective: Objective, sampler: str | None) -> Objective:
    """``objective`` sampling with ``sampler`` (None: unchanged, the checkpoint's default).

    Only networks told the interval (shortcut, MeanFlow) have a choice: a flow-matching or DDPM
    network knows one way to spend its passes, so naming a sampler for it is an error.
    """
    if sampler is None:
        return objective
    if not hasattr(objective, "sampler"):
        raise ValueError(
            f"sampler={sampler!r} applies to networks told the step size (shortcut, meanflow); "
            f"this policy was trained with {objective.name!r}, which has one sampler: drop sampler="
        )
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return dataclasses.replace(objective, sampler=sampler)


__all__ = [
    "DDPM",
    "FlowMatching",
    "MeanFlow",
    "Shortcut",
    "build_objective",
    "OBJECTIVES",
    "SAMPLERS",
    "with_sampler",
    "Objective",
]
