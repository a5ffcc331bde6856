"""Read a LeRobotDataset folder (format v2.1 or v3.0) into our zarr episode store.

What is read, and where it goes (``data/<our key>``):

* ``observation.state`` -> ``state``; any other ``observation.<name>`` vector -> ``<name>``;
* camera features ``observation.images.<cam>`` -> ``<cam>``, ``observation.image`` -> ``image``:
  frames decoded from the MP4 files (PyAV) or PNG bytes in the parquet, stored uint8 H x W x 3;
* ``action`` -> ``action``; bookkeeping columns (index, timestamps, task, reward, done) are left.

Layouts. v2.1 keeps one parquet file and one video per camera per episode
(``data/chunk-000/episode_000000.parquet``, ``videos/chunk-000/<cam>/episode_000000.mp4``) and
lists episodes in ``meta/episodes.jsonl``. v3.0 packs many episodes per file
(``data/chunk-000/file-000.parquet``, ``videos/<cam>/chunk-000/file-000.mp4``) and lists, per
episode, its files and its time span in each video in ``meta/episodes/.../*.parquet``. Both name
their file patterns in ``meta/info.json``.

Published datasets' totals in ``info.json`` (``total_frames``, ``total_episodes``,
``total_videos``) often disagree with the files present, so the episode tables and the files are
trusted, and a disagreement is reported in the summary. Needs the ``lerobot`` extra (pyarrow, av).

Memory stays bounded whatever the dataset's size: episodes are read one at a time, video frames
are decoded and written to the store in blocks of about ``BLOCK_BYTES`` (``StoreWriter``), and a
v3.0 video file holding many episodes is read forward once. Only the low-dimensional columns and
one parquet file are held at a time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shortcut_policy.data.replay_buffer import DatasetError
from shortcut_policy.data.store_writer import StoreWriter

BLOCK_BYTES = 64 * 2**20  # decoded video frames handed to the store at a time
BOOKKEEPING = {"episode_index", "frame_index", "timestamp", "index", "task_index"}


def convert_lerobot(folder: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``folder``'s episodes to the zarr store ``out``; returns the summary (printable)."""
    folder = Path(folder)
    info = read_info(folder)
    keys = feature_keys(info)
    version = str(info.get("codebase_version", ""))
    if version.startswith("v2"):
        episodes = _episodes_v2(folder, info, keys)
    elif version.startswith("v3"):
        episodes = _episodes_v3(folder, info, keys)
    else:
        raise DatasetError(f"{folder}: codebase_version {version!r}; this reader knows v2.1, v3.0")
    shapes: dict[str, list[int]] = {}
    count = frames = 0
    with StoreWriter(out) as store:
        for episode in episodes:
            for ours, values in episode.items():  # arrays, or iterators of frame blocks
                for block in [values] if isinstance(values, np.ndarray) else values:
                    shapes.setdefault(ours, list(block.shape[1:]))
                    store.add(ours, block)
            store.end_episode()
            count, frames = count + 1, store.episode_ends[-1]
        if not count:
            raise DatasetError(f"{folder}: the episode table lists no episodes")
    return {
        "source": str(folder),
        "version": version,
        "episodes": count,
        "frames": frames,
        "keys": {name: ours for name, (ours, _) in keys.items()},
        "shapes": {ours: shapes[ours] for ours, _ in keys.values()},
        "notes": totals_disagreements(info, count, frames),
    }


def read_info(folder: Path) -> dict[str, Any]:
    path = folder / "meta" / "info.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder} has no meta/info.json; it is not a LeRobotDataset") from None
    except ValueError as err:
        raise DatasetError(f"{path} is not valid JSON ({err})") from None


def feature_keys(info: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{lerobot name: (our key, kind)}`` with kind ``vector``, ``video`` or ``image``."""
    keys = {}
    for name, feature in info.get("features", {}).items():
        if name != "action" and not name.startswith("observation."):
            continue
        kind = {"video": "video", "image": "image"}.get(feature.get("dtype"), "vector")
        ours = name.removeprefix("observation.").removeprefix("images.")
        keys[name] = (ours, kind)
    if "action" not in keys:
        raise DatasetError("meta/info.json lists no 'action' feature; nothing to imitate")
    ours = [key for key, _ in keys.values()]
    if len(set(ours)) != len(ours):
        raise DatasetError(f"features {sorted(keys)} map to clashing store keys {ours}")
    return keys


def totals_disagreements(info: dict[str, Any], episodes: int, frames: int) -> list[str]:
    notes = []
    for field, found in (("total_episodes", episodes), ("total_frames", frames)):
        if field in info and int(info[field]) != found:
            notes.append(
                f"info.json says {field}={info[field]}, the files hold {found}: used the files"
            )
    return notes


def _episodes_v2(folder: Path, info: dict, keys: dict) -> Iterator[dict[str, np.ndarray]]:
    table_path = folder / "meta" / "episodes.jsonl"
    if not table_path.is_file():
        raise DatasetError(f"{folder} (v2.1) has no meta/episodes.jsonl")
    rows = [json.loads(line) for line in table_path.read_text().splitlines() if line.strip()]
    chunk_size = int(info.get("chunks_size", 1000))
    for row in rows:
        index, chunk = int(row["episode_index"]), int(row["episode_index"]) // chunk_size
        data = folder / info["data_path"].format(episode_chunk=chunk, episode_index=index)
        table = _episode_rows(_read_parquet(data), index, data)
        episode = _columns(table, keys, data, int(row["length"]))
        for name, (ours, kind) in keys.items():
            if kind == "video":
                video = info["video_path"].format(
                    episode_chunk=chunk, video_key=name, episode_index=index
                )
                blocks = VideoReader(folder / video).blocks()
                episode[ours] = _checked_blocks(blocks, int(row["length"]), video)
        yield episode


def _episodes_v3(folder: Path, info: dict, keys: dict) -> Iterator[dict[str, np.ndarray]]:
    files = sorted((folder / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{folder} (v3.0) has no meta/episodes/chunk-*/file-*.parquet")
    rows = [row for path in files for row in _read_parquet(path).to_pylist()]
    tables: dict[Path, Any] = {}
    videos: dict[str, VideoReader] = {}  # per camera: its current file, read forward
    half = 0.5 / float(info.get("fps", 30))  # a frame belongs to the span its middle falls in
    for row in sorted(rows, key=lambda r: r["episode_index"]):
        index, length = int(row["episode_index"]), int(row["length"])
        data = folder / info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if data not in tables:
            tables = {data: _read_parquet(data)}  # files are read in order: keep one at a time
        episode = _columns(_episode_rows(tables[data], index, data), keys, data, length)
        for name, (ours, kind) in keys.items():
            if kind != "video":
                continue
            path = folder / info["video_path"].format(
                video_key=name,
                chunk_index=row[f"videos/{name}/chunk_index"],
                file_index=row[f"videos/{name}/file_index"],
            )
            if name not in videos or videos[name].path != path:
                videos[name] = VideoReader(path)
            start, end = row[f"videos/{name}/from_timestamp"], row[f"videos/{name}/to_timestamp"]
            blocks = videos[name].blocks(start - half, end - half)
            episode[ours] = _checked_blocks(blocks, length, f"{path} [{start:.3f}, {end:.3f}) s")
        yield episode


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise DatasetError(f"{path} is listed by the episode table but missing") from None
    except Exception as err:  # pyarrow raises its own types for damaged files
        raise DatasetError(f"{path} is not a readable parquet file ({err})") from None


def _episode_rows(table, index: int, path: Path):
    """The rows of episode ``index`` in ``table``, or an error if the file disagrees."""
    if "episode_index" not in table.column_names:
        raise DatasetError(f"{path} has no episode_index column")
    column = np.asarray(table.column("episode_index").to_numpy())
    if not (column == index).any():
        found = sorted(set(column.tolist()))[:5]
        raise DatasetError(
            f"{path} holds no rows of episode {index} (its episode_index values: {found}...); "
            "the episode table and the data files disagree"
        )
    return table.filter(column == index)


def _columns(
    table, keys: dict, path: Path, length: int
) -> dict[str, np.ndarray | Iterator[np.ndarray]]:
    """The episode's vectors, and its image cells as a stream of blocks."""
    if table.num_rows != length:
        raise DatasetError(
            f"{path}: the episode table says {length} frames, the file has {table.num_rows}"
        )
    episode = {}
    for name, (ours, kind) in keys.items():
        if kind == "video":
            continue
        if name not in table.column_names:
            raise DatasetError(f"{path} has no column {name!r} (info.json lists it)")
        if kind == "image":
            episode[ours] = _png_blocks(table.column(name), path)
        else:
            values = table.column(name).to_pylist()
            episode[ours] = np.asarray(values, dtype=np.float32).reshape(length, -1)
    return episode


def _png_blocks(column, path: Path) -> Iterator[np.ndarray]:
    """Image cells decoded in blocks of about ``BLOCK_BYTES``: ``(n, H, W, 3)`` uint8."""
    block: list[np.ndarray] = []
    for value in column:
        block.append(_png(value.as_py(), path))
        if len(block) * block[0].nbytes >= BLOCK_BYTES:
            yield np.stack(block)
            block = []
    if block:
        yield np.stack(block)


def _png(value: Any, path: Path) -> np.ndarray:
    from PIL import Image

    data = value.get("bytes") if isinstance(value, dict) else value
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
    except Exception as err:
        raise DatasetError(f"{path}: an image cell is not a readable PNG/JPEG ({err})") from None


class VideoReader:
    """The frames of one MP4 in blocks of about ``BLOCK_BYTES``, decoded as they are asked for.

    ``blocks(start, end)`` yields the frames whose time ``t`` has ``start <= t < end`` (seconds),
    as ``(n, H, W, 3)`` uint8. Spans asked in increasing time continue the same decoder, so a
    file of many episodes is decoded once; a span that starts earlier reopens the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._frames: Iterator[tuple[np.ndarray, float]] = iter(())
        self._ahead: tuple[np.ndarray, float] | None = None  # decoded but not yet taken
        self._taken = -np.inf  # time of the newest frame handed out or skipped
        self._open()

    def blocks(self, start: float = -np.inf, end: float = np.inf) -> Iterator[np.ndarray]:
        if start <= self._taken:
            self._open()
        block: list[np.ndarray] = []
        for frame, time in self._until(end):
            if time < start:
                continue
            block.append(frame)
            if len(block) * frame.nbytes >= BLOCK_BYTES:
                yield np.stack(block)
                block = []
        if block:
            yield np.stack(block)

    def _until(self, end: float) -> Iterator[tuple[np.ndarray, float]]:
        while True:
            item = self._ahead if self._ahead is not None else next(self._frames, None)
            self._ahead = None
            if item is None:
                return
            if item[1] >= end:
                self._ahead = item
                return
            self._taken = item[1]
            yield item

    def _open(self) -> None:
        self._frames, self._ahead, self._taken = self._decode(), None, -np.inf

    def _decode(self) -> Iterator[tuple[np.ndarray, float]]:
        import av

        try:
            with av.open(str(self.path)) as container:
                for frame in container.decode(video=0):
                    # A frame without a time (some v2.1 files) is kept by any span that is
                    # not bounded; spans (v3.0) need times.
                    time = float("nan") if frame.time is None else float(frame.time)
                    yield frame.to_ndarray(format="rgb24"), time
        except FileNotFoundError:
            raise DatasetError(f"video {self.path} is listed but missing") from None
        except Exception as err:  # av.error.* for damaged or unsupported files
            raise DatasetError(f"video {self.path} cannot be decoded ({err})") from None


def _checked_blocks(
    blocks: Iterator[np.ndarray], length: int, where: object
) -> Iterator[np.ndarray]:
    """``blocks`` passed through, then a check that they held exactly ``length`` frames."""
    count = 0
    for block in blocks:
        count += len(block)
        if count > length:
            break
        yield block
    if count != length:
        more = "more" if count > length else str(count)
        raise DatasetError(f"{where}: {more} video frames for an episode of {length}")
