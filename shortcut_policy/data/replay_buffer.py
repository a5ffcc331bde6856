"""Episodes stored in zarr: ``data/<key>`` arrays concatenated over time and ``meta/episode_ends``.

This is Diffusion Policy's layout (its Push-T file is zarr format 2); we read formats 2 and 3,
from a directory or a ``.zip`` store, and write either format atomically (temporary path, rename).
``episode_ends[i]`` is the exclusive end index of episode ``i`` in every ``data/<key>`` array.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numcodecs
import numpy as np
import zarr
import zarr.storage

from shortcut_policy.atomic import replace_folder

FRAMES_PER_SHARD = 500  # camera frames per shard file (zarr format 3); ~1-2 MB compressed


class DatasetError(ValueError):
    """A dataset on disk that cannot be used as it is; the message says why and what to do."""


class ReplayBuffer:
    """Concatenated episodes (in memory; camera frames may stay lazily on disk, see ``open``).

    Attributes:
        data: key -> array ``(N, ...)`` (numpy, or a zarr array for lazy frames), N = total
            steps over all episodes.
        episode_ends: ``(E,)`` int64, strictly increasing, last equal to N.
    """

    def __init__(self, data: Mapping[str, np.ndarray], episode_ends: np.ndarray) -> None:
        self.data = dict(data)
        self.episode_ends = np.asarray(episode_ends, dtype=np.int64)
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_episodes(cls, episodes: Iterable[Mapping[str, np.ndarray]]) -> ReplayBuffer:
        """Concatenate episodes given as dicts of equally long arrays ``(T_i, ...)``."""
        episodes = list(episodes)
        if not episodes:
            raise DatasetError("no episodes to store (all were empty or filtered out)")
        keys = list(episodes[0])
        data = {key: np.concatenate([ep[key] for ep in episodes]) for key in keys}
        ends = np.cumsum([len(ep[keys[0]]) for ep in episodes])
        return cls(data, ends)

    @classmethod
    def open(
        cls, path: str | os.PathLike, keys: Sequence[str] | None = None, lazy_frames: bool = True
    ) -> ReplayBuffer:
        """Read a store (directory or ``.zip``, zarr format 2 or 3); ``keys`` selects arrays.

        With ``lazy_frames`` camera frames (uint8 arrays of rank 4) stay on disk as zarr arrays
        and are decoded when a window is read (in the data loader's workers), so a store larger
        than memory trains; everything else is loaded.
        """
        group = _open_group(Path(path))
        if "meta" not in group or "episode_ends" not in group["meta"]:
            raise DatasetError(
                f"{path} has no meta/episode_ends array; it is not an episode store "
                "(expected data/<key> arrays and meta/episode_ends, Diffusion Policy's layout)"
            )
        available = sorted(group["data"].keys()) if "data" in group else []
        wanted = list(keys) if keys is not None else available
        missing = [key for key in wanted if key not in available]
        if missing:
            raise DatasetError(
                f"{path} lacks data keys {missing}; it has {available}. "
                "Point the task's obs/action keys at keys the store has."
            )
        data = {key: _load(group["data"][key], lazy_frames) for key in wanted}
        try:
            return cls(data, np.asarray(group["meta"]["episode_ends"][:]))
        except DatasetError as err:
            raise DatasetError(f"{path}: {err}") from None

    # ------------------------------------------------------------------ queries
    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def n_steps(self) -> int:
        return int(self.episode_ends[-1]) if self.n_episodes else 0

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    def episode(self, index: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays (``keys``, default all) of one episode, each ``(T_i, ...)``."""
        start = 0 if index == 0 else int(self.episode_ends[index - 1])
        end = int(self.episode_ends[index])
        return {key: np.asarray(self.data[key][start:end]) for key in keys or self.data}

    def validate(self) -> None:
        """Check episode boundaries against array lengths and floats for NaN/inf."""
        ends = self.episode_ends
        if ends.ndim != 1 or len(ends) == 0:
            raise DatasetError("meta/episode_ends must be a non-empty 1-D array")
        if np.any(np.diff(ends, prepend=0) <= 0):
            raise DatasetError("meta/episode_ends must be strictly increasing and positive")
        for key, value in self.data.items():
            if value.shape[0] != ends[-1]:
                raise DatasetError(
                    f"data/{key} has {value.shape[0]} steps but meta/episode_ends says "
                    f"{int(ends[-1])}; the store is truncated or was written inconsistently"
                )
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                bad = np.argwhere(~np.isfinite(value.reshape(len(value), -1)))[0, 0]
                episode = int(np.searchsorted(ends, bad, side="right"))
                raise DatasetError(
                    f"data/{key} contains NaN or inf (first at step {bad}, episode {episode}); "
                    "remove or repair that episode"
                )

    # ------------------------------------------------------------------ writing
    def save(
        self,
        path: str | os.PathLike,
        zarr_format: int = 3,
        chunk_steps: int = 1024,
        meta: Mapping[str, np.ndarray] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> None:
        """Write atomically: build ``<path>.tmp`` then rename it over ``path``.

        Images (uint8 arrays of rank 4) are chunked one frame per chunk so that random access
        decodes only the frames it needs (in format 3, chunks are grouped into shard files of
        ``FRAMES_PER_SHARD`` frames). ``meta`` adds per-episode arrays under ``meta/`` and
        ``files`` adds small text files (e.g. ``summary.json``) inside the store folder.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        group = zarr.open_group(str(tmp), mode="w", zarr_format=zarr_format)
        for key, value in self.data.items():
            chunks = (1 if is_frames(value) else min(chunk_steps, len(value)), *value.shape[1:])
            # Format 3 packs frame chunks into shard files: the same random access, but tens
            # of files instead of one file (and three folders) per frame.
            shards = None
            if is_frames(value) and zarr_format == 3:
                shards = (min(FRAMES_PER_SHARD, len(value)), *value.shape[1:])
            write_array(group, f"data/{key}", value, chunks, zarr_format, shards)
        meta = {"episode_ends": self.episode_ends, **(meta or {})}
        for key, value in meta.items():
            write_array(group, f"meta/{key}", np.asarray(value), np.shape(value), zarr_format)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        replace_folder(tmp, path)


def is_frames(value) -> bool:
    """Camera frames: uint8 ``(N, H, W, C)`` (chunked one frame per chunk when written)."""
    return np.dtype(value.dtype) == np.uint8 and len(value.shape) == 4


def _load(array, lazy_frames: bool):
    return array if lazy_frames and is_frames(array) else np.asarray(array[:])


def zarr_compressor(zarr_format: int):
    blosc = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    if zarr_format == 2:
        return blosc
    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def write_array(group, name: str, value: np.ndarray, chunks, zarr_format: int, shards=None) -> None:
    array = group.create_array(
        name,
        shape=value.shape,
        dtype=value.dtype,
        chunks=chunks,
        shards=shards,
        compressors=zarr_compressor(zarr_format),
    )
    array[:] = value


def _open_group(path: Path) -> zarr.Group:
    if not path.exists():
        raise FileNotFoundError(
            f"dataset not found at {path}; check dataset.path, or generate the task's "
            "demonstrations first (see README)"
        )
    try:
        if path.suffix == ".zip":
            return zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
        return zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises several types for unreadable stores
        raise DatasetError(f"{path} is not a readable zarr store ({err})") from err
