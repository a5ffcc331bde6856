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
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer

BOOKKEEPING = {"episode_index", "frame_index", "timestamp", "index", "task_index"}


def convert_lerobot(folder: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``folder``'s episodes to the zarr store ``out``; returns the summary (printable)."""
    folder = Path(folder)
    info = read_info(folder)
    keys = feature_keys(info)
    version = str(info.get("codebase_version", ""))
    if version.startswith("v2"):
        episodes = list(_episodes_v2(folder, info, keys))
    elif version.startswith("v3"):
        episodes = list(_episodes_v3(folder, info, keys))
    else:
        raise DatasetError(f"{folder}: codebase_version {version!r}; this reader knows v2.1, v3.0")
    if not episodes:
        raise DatasetError(f"{folder}: the episode table lists no episodes")
    ReplayBuffer.from_episodes(episodes).save(out)
    frames = sum(len(ep["action"]) for ep in episodes)
    return {
        "source": str(folder),
        "version": version,
        "episodes": len(episodes),
        "frames": frames,
        "keys": {name: ours for name, (ours, _) in keys.items()},
        "shapes": {ours: list(episodes[0][ours].shape[1:]) for ours, _ in keys.values()},
        "notes": totals_disagreements(info, len(episodes), frames),
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
        episode = _vectors(table, keys, data, int(row["length"]))
        for name, (ours, kind) in keys.items():
            if kind == "video":
                video = info["video_path"].format(
                    episode_chunk=chunk, video_key=name, episode_index=index
                )
                episode[ours] = _checked_frames(decode_video(folder / video), row["length"], video)
        yield episode


def _episodes_v3(folder: Path, info: dict, keys: dict) -> Iterator[dict[str, np.ndarray]]:
    files = sorted((folder / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{folder} (v3.0) has no meta/episodes/chunk-*/file-*.parquet")
    rows = [row for path in files for row in _read_parquet(path).to_pylist()]
    tables: dict[Path, Any] = {}
    videos: dict[str, tuple[Path, np.ndarray, np.ndarray]] = {}  # per camera: its current file
    for row in sorted(rows, key=lambda r: r["episode_index"]):
        index, length = int(row["episode_index"]), int(row["length"])
        data = folder / info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if data not in tables:
            tables = {data: _read_parquet(data)}  # files are read in order: keep one at a time
        episode = _vectors(_episode_rows(tables[data], index, data), keys, data, length)
        for name, (ours, kind) in keys.items():
            if kind != "video":
                continue
            path = folder / info["video_path"].format(
                video_key=name,
                chunk_index=row[f"videos/{name}/chunk_index"],
                file_index=row[f"videos/{name}/file_index"],
            )
            if name not in videos or videos[name][0] != path:
                videos[name] = (path, *decode_video(path, with_times=True))
            _, frames, times = videos[name]
            start, end = row[f"videos/{name}/from_timestamp"], row[f"videos/{name}/to_timestamp"]
            half = 0.5 / float(info.get("fps", 30))
            chosen = frames[(times >= start - half) & (times < end - half)]
            episode[ours] = _checked_frames(chosen, length, f"{path} [{start:.3f}, {end:.3f}) s")
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


def _vectors(table, keys: dict, path: Path, length: int) -> dict[str, np.ndarray]:
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
        values = table.column(name).to_pylist()
        if kind == "image":
            episode[ours] = np.stack([_png(value, path) for value in values])
        else:
            episode[ours] = np.asarray(values, dtype=np.float32).reshape(length, -1)
    return episode


def _png(value: Any, path: Path) -> np.ndarray:
    from PIL import Image

    data = value.get("bytes") if isinstance(value, dict) else value
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
    except Exception as err:
        raise DatasetError(f"{path}: an image cell is not a readable PNG/JPEG ({err})") from None


def decode_video(path: Path, with_times: bool = False):
    """Frames ``(N, H, W, 3)`` uint8 of an MP4 (and their times in seconds, if asked)."""
    import av

    try:
        with av.open(str(path)) as container:
            decoded = [(f.to_ndarray(format="rgb24"), f.time) for f in container.decode(video=0)]
    except FileNotFoundError:
        raise DatasetError(f"video {path} is listed but missing") from None
    except Exception as err:  # av.error.* for damaged or unsupported files
        raise DatasetError(f"video {path} cannot be decoded ({err})") from None
    if not decoded:
        raise DatasetError(f"video {path} holds no frames")
    frames = np.stack([frame for frame, _ in decoded])
    if not with_times:
        return frames
    return frames, np.asarray([time for _, time in decoded], dtype=np.float64)


def _checked_frames(frames: np.ndarray, length: int, where: object) -> np.ndarray:
    if len(frames) != int(length):
        raise DatasetError(f"{where}: {len(frames)} video frames for an episode of {length}")
    return frames
