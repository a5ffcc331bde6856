"""Sequence windows over episodes, padded at episode borders.

A window of ``horizon`` steps may start up to ``pad_before`` steps before an episode begins and end
up to ``pad_after`` steps after it ends; the missing steps repeat the episode's first or last
frame. With ``pad_before = n_obs_steps - 1`` the first action of every episode can be trained with a
full observation history, and with ``pad_after = n_action_steps - 1`` the last actions too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def sequence_indices(
    episode_ends: np.ndarray,
    horizon: int,
    pad_before: int = 0,
    pad_after: int = 0,
    episodes: np.ndarray | None = None,
) -> np.ndarray:
    """Windows as rows ``[buffer_start, buffer_end, sample_start, sample_end]``, shape ``(W, 4)``.

    ``buffer[buffer_start:buffer_end]`` is copied into ``sample[sample_start:sample_end]`` of a
    ``horizon``-long sample; the rest is edge padding. ``episodes`` selects episode indices.
    """
    starts = np.concatenate([[0], episode_ends[:-1]])
    chosen = range(len(episode_ends)) if episodes is None else episodes
    rows = []
    for ep in chosen:
        start, end = int(starts[ep]), int(episode_ends[ep])
        length = end - start
        for offset in range(-pad_before, length - horizon + pad_after + 1):
            buffer_start = max(offset, 0) + start
            buffer_end = min(offset + horizon, length) + start
            sample_start = buffer_start - (offset + start)
            rows.append(
                (buffer_start, buffer_end, sample_start, sample_start + buffer_end - buffer_start)
            )
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def read_window(
    data: Mapping[str, np.ndarray], row: np.ndarray, horizon: int, keys: list[str], lengths: dict
) -> dict[str, np.ndarray]:
    """Copy one window for each key, padding by edge repetition.

    ``lengths[key]`` limits how many leading steps are read (e.g. ``n_obs_steps`` for
    observations), so image keys decode only the frames they need.
    """
    buffer_start, buffer_end, sample_start, sample_end = (int(v) for v in row)
    out = {}
    for key in keys:
        n = lengths.get(key, horizon)
        lo, hi = sample_start, min(sample_end, n)
        if hi <= lo:  # the window's real data starts after the part we need: pure padding
            frame = data[key][buffer_start]
            out[key] = np.repeat(frame[None], n, axis=0)
            continue
        chunk = np.asarray(data[key][buffer_start : buffer_start + hi - lo])
        before = np.repeat(chunk[:1], lo, axis=0)
        after = np.repeat(chunk[-1:], n - hi, axis=0)
        out[key] = np.concatenate([before, chunk, after])
    return out
