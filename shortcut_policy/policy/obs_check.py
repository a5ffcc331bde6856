"""Checks on what goes into and comes out of a policy: observations by key, shape, dtype and
finiteness, and action chunks by finiteness. The in-process policy, the policy server and its
client all use these, so a bad observation gets the same message wherever it is caught."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from shortcut_policy.data.obs_space import RGB, obs_types


class ObservationCheck:
    """Validates observations against a policy's ``spec`` (``obs_shapes``, ``obs_types``,
    ``n_obs_steps``): one observation ``{key: shape}`` or a batch ``{key: (B, n_obs_steps,
    *shape)}``. Returns float32 vectors and uint8 (or [0, 1] float32) camera frames."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.obs_shapes = {key: tuple(shape) for key, shape in spec["obs_shapes"].items()}
        self.obs_types = obs_types(spec)
        self.n_obs_steps = int(spec["n_obs_steps"])

    def __call__(self, obs: Mapping[str, Any], batched: bool) -> dict[str, np.ndarray]:
        """Check keys, shapes, dtypes and finiteness; raise a ``ValueError`` that names them."""
        if not isinstance(obs, Mapping):
            raise ValueError(f"observation must be a dict of arrays, got {type(obs).__name__}")
        missing = [key for key in self.obs_shapes if key not in obs]
        if missing:
            raise ValueError(
                f"observation is missing key(s) {missing}; got {sorted(obs)}, "
                f"expected {sorted(self.obs_shapes)}"
            )
        checked = {key: self.checked(key, obs[key], batched) for key in self.obs_shapes}
        batches = {key: len(value) for key, value in checked.items()} if batched else {}
        if len(set(batches.values())) > 1:
            raise ValueError(f"observations disagree on the batch size: {batches}")
        return checked

    def checked(self, key: str, value: Any, batched: bool) -> np.ndarray:
        """One key's array, checked and converted."""
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


def checked_noise(noise: Any, shape: tuple[int, ...], name: str = "noise") -> np.ndarray:
    """Starting noise (or another chunk-shaped input, called ``name`` in errors) as float32
    of exactly ``shape`` ``(B, horizon, Da)``, or a ValueError."""
    if isinstance(noise, torch.Tensor):
        noise = noise.detach().cpu().numpy()
    noise = np.asarray(noise)
    if noise.shape != tuple(shape):
        raise ValueError(f"{name} has shape {noise.shape}; expected {tuple(shape)}")
    noise = noise.astype(np.float32, copy=False)
    if not np.isfinite(noise).all():
        raise ValueError(f"{name} contains NaN or inf")
    return noise


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
