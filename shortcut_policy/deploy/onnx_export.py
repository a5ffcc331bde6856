"""One ONNX graph of a policy's action-chunk call, and a numpy runner for it.

    python -m shortcut_policy.export checkpoint=data/pretrained/push_t out=policy.onnx steps=1

The graph computes ``ShortcutPolicy.predict_action_chunk(obs, steps=steps, noise=noise)``,
normalization included:

- inputs: one per observation key, named by the key, ``(B, n_obs_steps, *shape)`` (float32
  vectors; camera keys uint8 ``(B, n_obs_steps, H, W, 3)`` as cameras give them), and ``noise``
  ``(B, horizon, Da)`` float32, standard normal (the starting sample, in normalized units);
- output: ``action`` ``(B, horizon, Da)`` float32 in data units.

``B`` is dynamic; the step budget (network passes) is fixed at export. The exporter is torch's
dynamo exporter (``torch.export`` + onnxscript): the passes are a Python loop, so they are
unrolled (every pass shares the one set of weights; graph size and export time grow with the
passes, the file barely). The policy's description is stored as JSON in the model's
``metadata_props`` under :data:`METADATA_KEY`, which :class:`OnnxPolicy` checks inputs against.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shortcut_policy import extras
from shortcut_policy.atomic import staged
from shortcut_policy.data.obs_space import RGB
from shortcut_policy.objectives.sampling import BudgetError
from shortcut_policy.policy import ShortcutPolicy
from shortcut_policy.policy.obs_check import ObservationCheck, checked_noise, finite_actions
from shortcut_policy.training.settings import ConfigError

METADATA_KEY = "shortcut_policy"
# Parity bound, in normalized action units ([-1, 1]). In data units fp32 rounding alone is
# larger where actions are large: Push-T's pixel actions (up to ~500) differ by ~3e-4 between
# torch's own batch-1 and batch-3 calls.
PARITY_TOL = 1e-4
# Unrolled passes cost export time superlinearly (unet_small on a loaded 2-core CPU: 1 pass
# 6 s, 8: 32 s, 16: 77 s, 32: 3.5 min; 128 had not finished after 20 CPU minutes), while the
# file grows only ~0.04 MB a pass. Past MAX_PASSES the export refuses unless told otherwise.
MAX_PASSES = 32
SLOW_PASSES = 8


class ExportError(ConfigError):
    """A policy, setting or installation the export cannot work with (the message says why)."""


def require(module: str) -> Any:
    """Import ``module`` (onnx, onnxruntime, onnxscript) or name the export extra."""
    return extras.require(module, "ONNX export", "export")


class ChunkGraph(torch.nn.Module):
    """What :meth:`PolicyNetwork.act` does, with given noise and a
    fixed budget: encode, ``objective.sample`` (``steps`` passes), unnormalize."""

    def __init__(self, policy: ShortcutPolicy, steps: int) -> None:
        super().__init__()
        self.network, self.objective, self.steps = policy.network, policy.objective, steps

    def forward(self, obs: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """``obs {key: (B, n_obs_steps, *shape)}``, ``noise (B, horizon, Da)`` -> actions
        ``(B, horizon, Da)`` in data units."""
        return self.network.act(obs, self.objective, self.steps, noise)


@dataclass
class ExportReport:
    """What :func:`export_policy` wrote and how well onnxruntime matched torch."""

    path: str
    steps: int
    size_mb: float
    nodes: int
    opset: int
    export_s: float
    max_abs_diff: float | None = None  # data units, onnxruntime vs torch, random inputs
    max_abs_diff_normalized: float | None = None  # the same in [-1, 1] action units

    def summary(self) -> str:
        text = (
            f"wrote {self.path} ({self.size_mb:.1f} MB, {self.steps} pass(es) unrolled, "
            f"{self.nodes} nodes, opset {self.opset}) in {self.export_s:.1f} s"
        )
        if self.max_abs_diff is not None:
            text += (
                f"; onnxruntime vs torch on random inputs: max abs diff {self.max_abs_diff:.3g} "
                f"(data units), {self.max_abs_diff_normalized:.3g} (normalized)"
            )
        return text


def describe(policy: ShortcutPolicy, steps: int) -> dict[str, Any]:
    """The JSON stored in the graph: enough to check inputs without the checkpoint."""
    spec = policy.spec
    return {
        "format": 1,
        "task": spec["task"],
        "objective": policy.objective.name,
        "sampler": getattr(policy.objective, "sampler", None),
        "train_step": policy.meta.get("step"),
        "steps": steps,
        "obs_shapes": {key: list(shape) for key, shape in policy.obs_shapes.items()},
        "obs_types": dict(policy.obs_types),
        "n_obs_steps": policy.n_obs_steps,
        "horizon": policy.horizon,
        "n_action_steps": policy.n_action_steps,
        "action_dim": int(spec["action_dim"]),
        "inputs": [*policy.obs_shapes, "noise"],
        "output": "action",
    }


def checked_budget(policy: ShortcutPolicy, steps: object, max_passes: int = MAX_PASSES) -> int:
    """``steps`` as the objective accepts it, refusing budgets that draw noise inside passes
    or that unroll into more than ``max_passes`` passes."""
    objective = policy.objective
    steps = objective.budget(steps)
    if objective.name == "ddpm" and steps == objective.train_steps:
        raise BudgetError(
            f"steps={steps} is DDPM's ancestral sampler, which draws fresh noise at every pass; "
            "the exported graph takes only the starting noise as an input. Export a DDIM "
            f"budget (steps < {steps}) instead"
        )
    if steps > max_passes:
        raise BudgetError(
            f"steps={steps} would unroll {steps} network passes into one graph; export time "
            f"grows faster than the passes (32 passes: minutes; 128: over 20 minutes on a small "
            f"CPU). Export at most {max_passes} passes, or raise max_passes if you can wait"
        )
    return steps


def example_inputs(
    policy: ShortcutPolicy, batch: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random ``(obs, noise)``: vectors uniform over the training range, frames uniform uint8."""
    rng = np.random.default_rng(seed)
    obs = {}
    for key, shape in policy.obs_shapes.items():
        full = (batch, policy.n_obs_steps, *shape)
        if policy.obs_types[key] == RGB:
            obs[key] = rng.integers(0, 256, full, dtype=np.uint8)
        else:
            low, high = data_range(policy, key)
            obs[key] = rng.uniform(low, high, full).astype(np.float32)
    noise = rng.standard_normal(policy.network.sample_shape(batch)).astype(np.float32)
    return obs, noise


def data_range(policy: ShortcutPolicy, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The training data's ``(low, high)`` of ``key`` (what the normalizer maps to [-1, 1])."""
    low, high = policy.network.normalizer.stats(key)
    return low.cpu().numpy(), high.cpu().numpy()


def trace(policy: ShortcutPolicy, steps: int, opset: int | None) -> Any:
    """The ``torch.onnx.ONNXProgram`` of :class:`ChunkGraph`, batch axis dynamic."""
    require("onnxscript")
    # Batch 2, not 1: torch.export would specialize a size-1 axis to a constant.
    obs, noise = example_inputs(policy, batch=2)
    # On the policy's device: a policy loaded on a GPU traces there (CPU inputs would not meet
    # its weights).
    obs = {key: torch.as_tensor(value, device=policy.device) for key, value in obs.items()}
    batch = torch.export.Dim("batch", min=1)
    dynamic = {"obs": {key: {0: batch} for key in obs}, "noise": {0: batch}}
    graph = ChunkGraph(policy, steps).eval()
    with torch.no_grad(), quiet_exporter():
        program = torch.onnx.export(
            graph,
            (obs, torch.as_tensor(noise, device=policy.device)),
            dynamo=True,
            input_names=[*obs, "noise"],
            output_names=["action"],
            dynamic_shapes=dynamic,
            opset_version=opset,
            verbose=False,
        )
    refuse_random_ops(program)
    return program


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence chatter that says nothing about this graph: the optimizer's per-node INFO lines
    (shown under hydra's logging), torchvision ops it skips, a pytree deprecation, and the
    shared ``batch`` axis name it keeps anyway."""
    levels = {"onnxscript": logging.WARNING, "onnx_ir": logging.WARNING}
    levels["torch.onnx._internal.exporter._registration"] = logging.ERROR
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*", category=UserWarning)
            yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


def refuse_random_ops(program: Any) -> None:
    """A sampler that draws noise inside its passes cannot match torch given the same noise."""
    random_ops = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}
    found = sorted(
        {node.op_type for node in all_nodes(program.model) if node.op_type in random_ops}
    )
    if found:
        raise BudgetError(
            f"at this budget the sampler draws fresh noise inside its passes ({found}); the "
            "exported graph takes only the starting noise as an input. Pick another budget"
        )


def all_nodes(model: Any) -> Any:
    """Every node of an ``onnx_ir`` model, inside subgraphs too."""
    import onnx_ir

    return onnx_ir.traversal.RecursiveGraphIterator(model.graph)


def strip_and_label(program: Any, description: Mapping[str, Any]) -> None:
    """Drop the per-node debug metadata (stack traces, FX text: most of an unrolled file's
    size) and store the policy's description on the model."""
    for node in all_nodes(program.model):
        node.metadata_props.clear()
    program.model.metadata_props[METADATA_KEY] = json.dumps(description)


def export_policy(
    policy: ShortcutPolicy,
    out: str | os.PathLike,
    steps: int = 1,
    opset: int | None = None,
    check: bool = True,
    max_passes: int = MAX_PASSES,
) -> ExportReport:
    """Write ``policy``'s chunk call at ``steps`` passes to the ONNX file ``out`` (atomically).

    The file is checked with ``onnx.checker``; with ``check`` and onnxruntime installed, it is
    run against ``predict_action_chunk`` on random inputs (batch 2) and refused (an
    :class:`ExportError`, nothing written) if they differ by more than :data:`PARITY_TOL` in
    normalized action units. Budgets over ``max_passes`` are refused (see :data:`MAX_PASSES`).
    """
    onnx = require("onnx")
    steps = checked_budget(policy, steps, max_passes)
    if steps > SLOW_PASSES:
        print(f"[export] unrolling {steps} passes into one graph: this takes minutes")
    start = time.perf_counter()
    program = trace(policy, steps, opset)
    strip_and_label(program, describe(policy, steps))
    with staged(out) as tmp:
        program.save(str(tmp), external_data=False)
        onnx.checker.check_model(str(tmp), full_check=True)
        report = ExportReport(
            path=str(out),
            steps=steps,
            size_mb=tmp.stat().st_size / 1e6,
            nodes=len(program.model.graph),
            opset=program.model.opset_imports[""],
            export_s=time.perf_counter() - start,
        )
        if check and has_onnxruntime():
            report.max_abs_diff, report.max_abs_diff_normalized = parity(policy, tmp, steps)
            if report.max_abs_diff_normalized > PARITY_TOL:
                raise ExportError(f"onnxruntime does not match torch: {report.summary()}")
    return report


def has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def parity(
    policy: ShortcutPolicy, path: str | os.PathLike, steps: int, batch: int = 2, seed: int = 1
) -> tuple[float, float]:
    """Max abs difference onnxruntime vs torch on random inputs: ``(data units, normalized)``."""
    obs, noise = example_inputs(policy, batch, seed)
    expected = policy.predict_action_chunk(obs, steps=steps, noise=noise)
    got = OnnxPolicy(path).predict_action_chunk(obs, noise)
    low, high = data_range(policy, "action")
    diff = np.abs(got - expected)
    return float(diff.max()), float((diff / ((high - low) / 2)).max())


class OnnxPolicy:
    """An exported policy run by onnxruntime from numpy: inputs checked against the metadata.

    Args:
        path: the ``.onnx`` file from :func:`export_policy`.
        threads: onnxruntime intra- and inter-op threads (0: its default, all cores).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ExportError(f"{path} has no {METADATA_KEY!r} metadata: not exported by us")
        self.meta = json.loads(meta[METADATA_KEY])
        self.check = ObservationCheck(self.meta)
        self.obs_shapes, self.obs_types = self.check.obs_shapes, self.check.obs_types
        self.n_obs_steps, self.horizon = self.meta["n_obs_steps"], self.meta["horizon"]
        self.n_action_steps, self.steps = self.meta["n_action_steps"], self.meta["steps"]
        self.action_dim = self.meta["action_dim"]
        self.rng = np.random.default_rng()

    def seed(self, seed: int) -> None:
        """Make the noise drawn when none is given reproducible."""
        self.rng = np.random.default_rng(seed)

    def predict_action_chunk(
        self, obs: Mapping[str, np.ndarray], noise: np.ndarray | None = None
    ) -> np.ndarray:
        """``{key: (B, n_obs_steps, *shape)}`` (+ ``noise (B, horizon, Da)``, drawn when None)
        -> actions ``(B, horizon, Da)`` float32 in data units; a ``ValueError`` names a bad input.
        """
        feed = self.checked_obs(obs)
        batch = next(iter(feed.values())).shape[0]
        shape = (batch, self.horizon, self.action_dim)
        if noise is None:
            noise = self.rng.standard_normal(shape).astype(np.float32)
        feed["noise"] = checked_noise(noise, shape)
        return finite_actions(self.session.run(["action"], feed)[0])

    def checked_obs(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Keys, shapes, dtypes and finiteness checked as the in-process policy checks them;
        frames must also be uint8 (the graph's input type)."""
        feed = self.check(obs, batched=True)
        for key, value in feed.items():
            if self.obs_types[key] == RGB and value.dtype != np.uint8:
                raise ValueError(f"camera {key!r} frames are {value.dtype}; pass uint8 (0..255)")
        return feed


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    steps: int = 1,
    opset: int | None = None,
    task: str | None = None,
    check: bool = True,
    max_passes: int = MAX_PASSES,
    sampler: str | None = None,
) -> ExportReport:
    """Load ``checkpoint`` on the CPU (``task``: refuse another task's policy) and export it,
    with ``sampler`` (None: the checkpoint's) unrolled into the graph."""
    require("onnx")  # before the checkpoint is loaded
    policy = ShortcutPolicy.from_pretrained(
        Path(checkpoint), device="cpu", task=task, sampler=sampler
    )
    return export_policy(policy, out, steps, opset, check, max_passes)
