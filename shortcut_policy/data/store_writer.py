"""Write a zarr episode store episode by episode, camera frames block by block.

``ReplayBuffer.save`` writes arrays that are already in memory. A converted dataset may hold
more decoded frames than memory, so :class:`StoreWriter` takes them as they are decoded:

    with StoreWriter("out.zarr") as store:
        for episode in episodes:
            store.add("action", actions)              # (T, Da): kept until close (small)
            for block in frame_blocks:                # (n, H, W, 3) uint8: written at once
                store.add("top", block)
            store.end_episode()                       # every key must have T steps

Low-dimensional arrays are gathered and written at ``close`` (a few MB for hours of data);
frames go to disk as they come, so memory holds one block. The layout is ``ReplayBuffer.save``'s
(one frame per chunk, ``FRAMES_PER_SHARD`` frames per shard in format 3), and the store appears
at ``path`` only when complete: it is built at ``<path>.tmp`` and renamed by ``close``; an error
inside the ``with`` block removes the partial store.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

import numpy as np
import zarr

from shortcut_policy.atomic import replace_folder
from shortcut_policy.data.replay_buffer import (
    FRAMES_PER_SHARD,
    DatasetError,
    is_frames,
    write_array,
    zarr_compressor,
)


class StoreWriter:
    """An episode store under construction at ``<path>.tmp`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, zarr_format: int = 3, chunk_steps: int = 1024):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.zarr_format, self.chunk_steps = zarr_format, chunk_steps
        self.group = zarr.open_group(str(self.tmp), mode="w", zarr_format=zarr_format)
        self.vectors: dict[str, list[np.ndarray]] = {}
        self.frames: dict[str, zarr.Array] = {}
        self.steps: dict[str, int] = {}  # per key, steps written so far
        self.episode_ends: list[int] = []

    def add(self, key: str, values: np.ndarray) -> None:
        """Append ``values`` ``(n, ...)`` to ``data/<key>`` for the current episode."""
        values = np.asarray(values)
        if is_frames(values):
            self._append_frames(key, values)
        else:
            self.vectors.setdefault(key, []).append(values)
        self.steps[key] = self.steps.get(key, 0) + len(values)

    def end_episode(self) -> None:
        """Close the current episode; every key must have received the same number of steps."""
        if len(set(self.steps.values())) != 1:
            raise DatasetError(f"an episode's keys have different lengths: {self.steps}")
        end = next(iter(self.steps.values()))
        if end <= (self.episode_ends[-1] if self.episode_ends else 0):
            raise DatasetError("an episode without steps; every episode needs at least one")
        self.episode_ends.append(end)

    def close(self) -> None:
        """Write the vectors and ``meta/episode_ends``, then move the store into place."""
        if not self.episode_ends:
            raise DatasetError("no episode was written")
        if set(self.steps.values()) != {self.episode_ends[-1]}:
            raise DatasetError("the last episode was not ended (end_episode)")
        for key, parts in self.vectors.items():
            value = np.concatenate(parts)
            chunks = (min(self.chunk_steps, len(value)), *value.shape[1:])
            write_array(self.group, f"data/{key}", value, chunks, self.zarr_format)
        ends = np.asarray(self.episode_ends, dtype=np.int64)
        write_array(self.group, "meta/episode_ends", ends, ends.shape, self.zarr_format)
        replace_folder(self.tmp, self.path)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.close()
        finally:  # nothing half-written is left behind (a refused close included)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _append_frames(self, key: str, frames: np.ndarray) -> None:
        if key not in self.frames:
            shape = frames.shape[1:]
            shards = (FRAMES_PER_SHARD, *shape) if self.zarr_format == 3 else None
            self.frames[key] = self.group.create_array(
                f"data/{key}",
                shape=(0, *shape),
                dtype=np.uint8,
                chunks=(1, *shape),
                shards=shards,
                compressors=zarr_compressor(self.zarr_format),
            )
        array = self.frames[key]
        if frames.shape[1:] != array.shape[1:]:
            raise DatasetError(
                f"data/{key}: a frame of shape {frames.shape[1:]} after frames of "
                f"{array.shape[1:]}; every frame of a camera must have one shape"
            )
        start = array.shape[0]
        array.resize((start + len(frames), *array.shape[1:]))
        array[start:] = frames
