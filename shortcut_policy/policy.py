"""``ShortcutPolicy``: the control-loop API.

    policy = ShortcutPolicy.from_pretrained("runs/push_t/shortcut-unet_small-seed0", steps=1)
    policy.reset()
    while True:
        action = policy.select_action({"keypoint": kp, "state": state})   # one action, (Da,)

Camera observations are passed as cameras give them, ``(H, W, 3)`` uint8 (e.g.
``{"img": frame, "agent_pos": xy}`` for ``push_t_image``); the policy converts them.

Three numbers define how a chunk is used (Push-T low-dim defaults in brackets):

| name             | meaning                                                          | Push-T |
|------------------|------------------------------------------------------------------|--------|
| ``n_obs_steps``  | observations the network conditions on (the newest ones)        | 2      |
| ``horizon``      | actions generated per network call (one chunk)                   | 16     |
| ``n_action_steps``| actions of the chunk executed before a new chunk is generated  | 8      |

::

    time          t-1   t    t+1  ...  t+7  t+8 ...  t+14
    observations  [o    o]                                     n_obs_steps = 2
    chunk         a    [a    a    ...  a]   a   ...  a         horizon = 16
    executed           ^--- n_action_steps = 8 ---^

The chunk starts at the oldest observation (as in training), so the executed actions are
``chunk[n_obs_steps - 1 : n_obs_steps - 1 + n_action_steps]``. ``select_action`` keeps the
observation history and the queue of actions still to execute; a new chunk is generated only
when the queue is empty. The step budget (network passes per chunk) is set per policy
(``policy.steps``) or per call (``predict_action_chunk(obs, steps=...)``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shortcut_policy.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    prefixed,
    save_checkpoint,
)
from shortcut_policy.data.obs_space import RGB, obs_types
from shortcut_policy.inference import sample_action_chunk
from shortcut_policy.pretrained import load_policy_network

POLICY_FILE = "policy.safetensors"


def resolve_policy_path(path: str | os.PathLike) -> Path:
    """A checkpoint file from a file, a saved-policy folder, a run folder or its checkpoints."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / POLICY_FILE).is_file():
        return path / POLICY_FILE
    for folder in (path / "checkpoints", path):
        newest = latest_checkpoint(folder)
        if newest is not None:
            return newest
        if (folder / "last.safetensors").is_file():
            return folder / "last.safetensors"
    raise CheckpointError(
        f"no policy at {path}: expected a .safetensors checkpoint, a folder with {POLICY_FILE}, "
        "or a training run folder with checkpoints/"
    )


class ChunkBuffer:
    """Observation history and queue of actions still to execute, for one episode.

    ``ShortcutPolicy.select_action`` uses one; batched rollouts keep one per environment.
    """

    def __init__(self, n_obs_steps: int, n_action_steps: int) -> None:
        self.n_obs_steps, self.n_action_steps = n_obs_steps, n_action_steps
        self.observations: deque[dict[str, np.ndarray]] = deque(maxlen=n_obs_steps)
        self.actions: deque[np.ndarray] = deque()

    @property
    def needs_chunk(self) -> bool:
        return not self.actions

    def add_observation(self, obs: dict[str, np.ndarray]) -> None:
        self.observations.append(obs)

    def history(self, newest: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``{key: (n_obs_steps, *shape)}``, the oldest observation repeated while too short;
        with ``newest``, the history as it would be once that observation is added."""
        frames = list(self.observations) + ([newest] if newest is not None else [])
        frames = frames[-self.n_obs_steps :]
        frames = [frames[0]] * (self.n_obs_steps - len(frames)) + frames
        return {key: np.stack([frame[key] for frame in frames]) for key in frames[0]}

    def enqueue(self, chunk: np.ndarray) -> None:
        """Queue the executed part of a chunk ``(horizon, Da)`` (it starts at the oldest obs)."""
        start = self.n_obs_steps - 1
        self.actions.extend(chunk[start : start + self.n_action_steps])

    def pop(self) -> np.ndarray:
        return self.actions.popleft()


class ShortcutPolicy:
    """A trained action generator with observation history and an action queue.

    Args:
        network: the trained :class:`PolicyNetwork` (EMA weights when loaded from training).
        objective: the objective it was trained with (defines sampling).
        meta: plain checkpoint metadata (``spec``, ``config``).
        steps: network passes per chunk (default: the objective's ``default_steps``).
        device: ``"cpu"``, ``"cuda"`` or None for CUDA when available.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        objective: Any,
        meta: Mapping[str, Any],
        steps: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.objective = objective
        self.meta = dict(meta)
        self.spec = dict(meta["spec"])
        self.obs_shapes = {key: tuple(shape) for key, shape in self.spec["obs_shapes"].items()}
        self.obs_types = obs_types(self.spec)
        self.n_obs_steps = int(self.spec["n_obs_steps"])
        self.horizon = int(self.spec["horizon"])
        self.n_action_steps = int(self.spec["n_action_steps"])
        if self.horizon < self.n_obs_steps - 1 + self.n_action_steps:
            raise ValueError(
                f"horizon {self.horizon} is too short to execute {self.n_action_steps} actions "
                f"after {self.n_obs_steps} observations; need n_obs_steps - 1 + n_action_steps"
            )
        self.steps = objective.budget(steps)
        self.generator: torch.Generator | None = None
        self.reset()

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        steps: int | None = None,
        task: str | None = None,
    ) -> ShortcutPolicy:
        """Load from a checkpoint file, a folder from :meth:`save_pretrained`, or a run folder.

        ``task`` (optional) refuses a policy trained for another task.
        """
        file = resolve_policy_path(path)
        network, objective, meta = load_policy_network(file)
        if task is not None and meta["spec"]["task"] != task:
            raise CheckpointError(
                f"{file} holds a policy for task {meta['spec']['task']!r}, not {task!r}; "
                "pick a checkpoint trained on this task"
            )
        return cls(network, objective, meta, steps=steps, device=device)

    def save_pretrained(
        self, path: str | os.PathLike, weights_dtype: torch.dtype = torch.float32
    ) -> Path:
        """Write the weights and plain config to ``path/policy.safetensors`` (atomic).

        ``weights_dtype=torch.float16`` halves the file (for shipping); the normalizer's
        statistics stay float32, and loading casts everything back to float32.
        """
        meta = {
            "format": self.meta.get("format", 1),
            "step": self.meta.get("step"),
            "spec": self.spec,
            "config": {k: self.meta["config"][k] for k in ("task", "model", "objective")},
            "weights_dtype": str(weights_dtype).removeprefix("torch."),
        }
        state = {
            key: value.to(weights_dtype)
            if value.is_floating_point() and not key.startswith("normalizer.")
            else value
            for key, value in self.network.state_dict().items()
        }
        target = Path(path) / POLICY_FILE
        save_checkpoint(target, prefixed("ema", state), meta)
        return target

    # ------------------------------------------------------------------ control loop
    def reset(self) -> None:
        """Forget the observation history and the queued actions (call at episode start)."""
        self.buffer = ChunkBuffer(self.n_obs_steps, self.n_action_steps)

    def select_action(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One observation ``{key: shape}`` in, one action ``(Da,)`` out (data units).

        Generates a chunk only when the queue of actions is empty; until the history holds
        ``n_obs_steps`` observations, the oldest one is repeated (as the training data pads).
        An observation that is refused, or whose chunk is, leaves the history as it was.
        """
        checked = self.validate(obs, batched=False)
        chunk = None
        if self.buffer.needs_chunk:
            history = self.buffer.history(newest=checked)
            chunk = self.predict_action_chunk({key: value[None] for key, value in history.items()})
        self.buffer.add_observation(checked)
        if chunk is not None:
            self.buffer.enqueue(chunk[0])
        return self.buffer.pop()

    @torch.inference_mode()
    def predict_action_chunk(
        self,
        obs: Mapping[str, np.ndarray | torch.Tensor],
        steps: int | None = None,
        noise: np.ndarray | torch.Tensor | None = None,
    ) -> np.ndarray:
        """Observations ``{key: (B, n_obs_steps, *shape)}`` -> actions ``(B, horizon, Da)``.

        ``steps`` overrides ``self.steps`` for this call. ``noise`` ``(B, horizon, Da)``, standard
        normal, fixes the starting sample (to compare with an exported graph fed the same noise).
        Raises ``ValueError`` rather than return a NaN or infinite action.
        """
        steps = self.objective.budget(self.steps if steps is None else steps)
        tensors = self.network_inputs(obs)
        if noise is not None:
            noise = self.checked_noise(noise, batch=next(iter(tensors.values())).shape[0])
        chunk = sample_action_chunk(
            self.network, self.objective, tensors, steps, self.generator, noise
        )
        return finite_actions(chunk.cpu().numpy())

    def checked_noise(self, noise: np.ndarray | torch.Tensor, batch: int) -> torch.Tensor:
        """``noise`` as a float32 device tensor of shape ``(batch, horizon, Da)``, or a ValueError."""
        noise = torch.as_tensor(noise, dtype=torch.float32, device=self.device)
        expected = tuple(self.network.sample_shape(batch))
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected {expected}")
        if not torch.isfinite(noise).all():
            raise ValueError("noise contains NaN or inf")
        return noise

    def network_inputs(self, obs: Mapping[str, np.ndarray | torch.Tensor]) -> dict:
        """Checked batched observations ``{key: (B, n_obs_steps, *shape)}`` as device tensors.

        Frames travel as uint8 (4x less to copy to the GPU); the encoder converts them.
        """
        checked = self.validate(obs, batched=True)
        return {key: torch.as_tensor(value, device=self.device) for key, value in checked.items()}

    def seed(self, seed: int) -> None:
        """Make sampling noise reproducible from now on."""
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    # ------------------------------------------------------------------ validation
    def validate(self, obs: Mapping[str, Any], batched: bool) -> dict[str, np.ndarray]:
        """Check keys, shapes, dtypes and finiteness; raise a ``ValueError`` that names them."""
        if not isinstance(obs, Mapping):
            raise ValueError(f"observation must be a dict of arrays, got {type(obs).__name__}")
        missing = [key for key in self.obs_shapes if key not in obs]
        if missing:
            raise ValueError(
                f"observation is missing key(s) {missing}; got {sorted(obs)}, "
                f"expected {sorted(self.obs_shapes)}"
            )
        return {key: self._check(key, obs[key], batched) for key in self.obs_shapes}

    def _check(self, key: str, value: Any, batched: bool) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise ValueError(f"observation {key!r} has dtype {value.dtype}; expected a number type")
        expected = self.obs_shapes[key]
        n_lead = value.ndim - len(expected)
        lead = value.shape[: max(n_lead, 0)]
        ok_lead = (len(lead) == 2 and lead[1] == self.n_obs_steps) if batched else n_lead == 0
        if n_lead < 0 or value.shape[n_lead:] != expected or not ok_lead:
            if self.obs_types[key] == RGB:
                raise ValueError(frame_shape_error(key, value.shape, expected, batched))
            want = f"(B, {self.n_obs_steps}, *{expected})" if batched else str(expected)
            raise ValueError(f"observation {key!r} has shape {tuple(value.shape)}; expected {want}")
        if self.obs_types[key] == RGB:
            return checked_frames(key, value)
        # Checked after the cast: a float64 1e300 is finite, but inf in float32.
        with np.errstate(over="ignore"):
            value = value.astype(np.float32, copy=False)
        finite = np.isfinite(value)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"observation {key!r} contains NaN or inf, or a value beyond float32's range "
                f"(first at index {first})"
            )
        return value


def finite_actions(chunk: np.ndarray) -> np.ndarray:
    """``chunk`` ``(B, horizon, Da)`` as it is, or a ``ValueError`` if any action is not finite."""
    bad = ~np.isfinite(chunk).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"the policy produced NaN or infinite actions for batch row(s) "
            f"{np.flatnonzero(bad).tolist()}: the observation is far outside anything seen in "
            "training; check its units and scale (the action was not returned)"
        )
    return chunk


def frame_shape_error(key: str, shape: tuple[int, ...], expected: tuple[int, ...], batched: bool):
    """The message for a camera frame of the wrong size or channel order."""
    height, width, _ = expected
    frame = tuple(shape[-3:])
    want = f"(B, n_obs_steps, {height}, {width}, 3)" if batched else f"({height}, {width}, 3)"
    if frame == (3, height, width):
        return (
            f"camera {key!r} frame has shape {tuple(shape)}: channels first; pass H x W x 3 as "
            f"cameras give it, {want} (np.moveaxis(frame, -3, -1))"
        )
    if len(shape) >= 3 and shape[-1] == 3 and frame != expected:
        return (
            f"camera {key!r} gives {shape[-3]}x{shape[-2]} frames but the policy was trained on "
            f"{height}x{width}; resize the frames to {height}x{width} (shape {want})"
        )
    return f"camera {key!r} frame has shape {tuple(shape)}; expected {want} RGB"


def checked_frames(key: str, value: np.ndarray) -> np.ndarray:
    """uint8 frames as they are; float frames must already be in [0, 1]."""
    if value.dtype == np.uint8:
        return value
    if not np.issubdtype(value.dtype, np.floating):
        raise ValueError(f"camera {key!r} frames are {value.dtype}; pass uint8 (0..255)")
    if not np.isfinite(value).all() or value.min() < 0 or value.max() > 1:
        raise ValueError(
            f"camera {key!r} float frames must be finite and in [0, 1] (got "
            f"{np.nanmin(value):.3g}..{np.nanmax(value):.3g}); pass uint8 frames or divide by 255"
        )
    return value.astype(np.float32, copy=False)
