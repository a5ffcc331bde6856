"""Peak memory of ``convert lerobot=DIR`` on a LeRobot v3.0 folder larger than memory should hold.

    python benchmarks/convert_memory.py                 # ~4.4 GB of decoded frames
    python benchmarks/convert_memory.py --episodes 4    # a quick look

Writes a v3.0 folder (parquet episode tables and data, one MP4 per camera per file of
``--episodes-per-file`` episodes, H.264) of ``--episodes`` episodes of ``--length`` frames at
``--height`` x ``--width``, then runs the documented command in a subprocess and reads its peak
resident set size from the kernel (``ru_maxrss`` of the waited child). The frames are moving
gradients (cheap to make, and the video stays small on disk). Result:
``docs/results/convert_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "observation.images.front"
FPS = 10


def frames_of(episode: int, length: int, height: int, width: int) -> np.ndarray:
    """``(length, H, W, 3)`` uint8: a diagonal gradient that moves one pixel per frame."""
    y, x = np.mgrid[0:height, 0:width]
    base = (x + y + 37 * episode).astype(np.int64)
    shifts = np.arange(length)[:, None, None]
    red = (base[None] + 2 * shifts) % 256
    return np.stack([red, (red + 85) % 256, (255 - red) % 256], axis=-1).astype(np.uint8)


def write_video(path: Path, episodes: list[int], length: int, height: int, width: int) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for episode in episodes:
            for frame in frames_of(episode, length, height, width):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(root: Path, args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {
        "observation.state": {"dtype": "float32", "shape": [2]},
        CAMERA: {"dtype": "video", "shape": [args.height, args.width, 3]},
        "action": {"dtype": "float32", "shape": [2]},
        "episode_index": {"dtype": "int64", "shape": [1]},
    }
    info = {
        "codebase_version": "v3.0",
        "fps": FPS,
        "total_episodes": args.episodes,
        "total_frames": args.episodes * args.length,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    table: dict[str, list] = {k: [] for k in ("episode_index", "length", "file", "from", "to")}
    for file in range(0, args.episodes, args.episodes_per_file):
        group = list(range(file, min(file + args.episodes_per_file, args.episodes)))
        index = file // args.episodes_per_file
        frame = np.arange(args.length, dtype=np.float32)
        data = {
            "observation.state": [[e, f] for e in group for f in frame],
            "action": [[f, -f] for _ in group for f in frame],
            "episode_index": [e for e in group for _ in frame],
        }
        path = root / f"data/chunk-000/file-{index:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(data), path)
        video = root / f"videos/{CAMERA}/chunk-000/file-{index:03d}.mp4"
        write_video(video, group, args.length, args.height, args.width)
        for position, episode in enumerate(group):
            table["episode_index"].append(episode)
            table["length"].append(args.length)
            table["file"].append(index)
            table["from"].append(position * args.length / FPS)
            table["to"].append((position + 1) * args.length / FPS)
    rows = {
        "episode_index": table["episode_index"],
        "length": table["length"],
        "data/chunk_index": [0] * args.episodes,
        "data/file_index": table["file"],
        f"videos/{CAMERA}/chunk_index": [0] * args.episodes,
        f"videos/{CAMERA}/file_index": table["file"],
        f"videos/{CAMERA}/from_timestamp": table["from"],
        f"videos/{CAMERA}/to_timestamp": table["to"],
    }
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table(rows), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--length", type=int, default=190, help="frames per episode")
    parser.add_argument("--episodes-per-file", type=int, default=25)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "convert_memory")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/convert_memory.json")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    started = time.perf_counter()
    make_dataset(args.work / "lerobot", args)
    made = time.perf_counter() - started
    store = args.work / "out.zarr"
    command = [sys.executable, "-m", "shortcut_policy.convert"]
    command += [f"lerobot={args.work / 'lerobot'}", f"out={store}"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    frames = args.episodes * args.length
    report = {
        "command": " ".join(["python", "-m", "shortcut_policy.convert", "lerobot=DIR", "out=OUT"]),
        "episodes": args.episodes,
        "frames": frames,
        "frame_shape": [args.height, args.width, 3],
        "decoded_frame_gb": frames * args.height * args.width * 3 / 1e9,
        "peak_rss_gb": peak_bytes / 1e9,
        "convert_s": seconds,
        "make_dataset_s": made,
        "store_gb_on_disk": sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e9,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
