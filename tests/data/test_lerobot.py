"""LeRobotDataset folders (v2.1 and v3.0) built here with pyarrow and PyAV, then converted."""

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
av = pytest.importorskip("av")

from shortcut_policy.data.lerobot import convert_lerobot  # noqa: E402
from shortcut_policy.data.replay_buffer import DatasetError, ReplayBuffer  # noqa: E402

FPS = 10
CAMERA = "observation.images.top"
LENGTHS = [6, 9]


def episode(index, length):
    """Values that say where they come from: state = (episode, frame), frames of one grey."""
    frame = np.arange(length)
    return {
        "observation.state": np.stack([np.full(length, index), frame], 1).astype(np.float32),
        "action": np.stack([frame * 2.0, -frame], 1).astype(np.float32),
        "frames": np.stack([np.full((32, 32, 3), 40 * index + 20 * f, np.uint8) for f in frame]),
    }


def info(version, data_path, video_path, total_frames=None):
    return {
        "codebase_version": version,
        "fps": FPS,
        "chunks_size": 1000,
        "total_episodes": len(LENGTHS),
        "total_frames": total_frames if total_frames is not None else sum(LENGTHS),
        "data_path": data_path,
        "video_path": video_path,
        "features": {
            "observation.state": {"dtype": "float32", "shape": [2]},
            CAMERA: {"dtype": "video", "shape": [32, 32, 3]},
            "action": {"dtype": "float32", "shape": [2]},
            "episode_index": {"dtype": "int64", "shape": [1]},
            "timestamp": {"dtype": "float32", "shape": [1]},
        },
    }


def write_video(path, frames, codec="libx264"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.options = {"crf": "0"} if codec == "libx264" else {}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def table(episodes_with_index):
    rows = {"observation.state": [], "action": [], "episode_index": [], "timestamp": []}
    for index, ep in episodes_with_index:
        n = len(ep["action"])
        rows["observation.state"] += ep["observation.state"].tolist()
        rows["action"] += ep["action"].tolist()
        rows["episode_index"] += [index] * n
        rows["timestamp"] += (np.arange(n) / FPS).tolist()
    return pa.table(rows)


def write_parquet(path, tab):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tab, path)


def make_v21(root, **info_fields):
    (root / "meta").mkdir(parents=True)
    fields = info(
        "v2.1",
        "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        **info_fields,
    )
    (root / "meta" / "info.json").write_text(json.dumps(fields))
    lines = [json.dumps({"episode_index": i, "length": n}) for i, n in enumerate(LENGTHS)]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    for i, n in enumerate(LENGTHS):
        ep = episode(i, n)
        write_parquet(root / f"data/chunk-000/episode_{i:06d}.parquet", table([(i, ep)]))
        write_video(root / f"videos/chunk-000/{CAMERA}/episode_{i:06d}.mp4", ep["frames"])
    return root


def make_v30(root):
    (root / "meta").mkdir(parents=True)
    fields = info(
        "v3.0",
        "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    )
    (root / "meta" / "info.json").write_text(json.dumps(fields))
    eps = [(i, episode(i, n)) for i, n in enumerate(LENGTHS)]
    write_parquet(root / "data/chunk-000/file-000.parquet", table(eps))  # both in one file
    write_video(
        root / f"videos/{CAMERA}/chunk-000/file-000.mp4",
        np.concatenate([ep["frames"] for _, ep in eps]),
        codec="libsvtav1",  # LeRobot's own codec
    )
    starts = np.cumsum([0, *LENGTHS])
    rows = {
        "episode_index": [0, 1],
        "length": LENGTHS,
        "data/chunk_index": [0, 0],
        "data/file_index": [0, 0],
        f"videos/{CAMERA}/chunk_index": [0, 0],
        f"videos/{CAMERA}/file_index": [0, 0],
        f"videos/{CAMERA}/from_timestamp": (starts[:-1] / FPS).tolist(),
        f"videos/{CAMERA}/to_timestamp": (starts[1:] / FPS).tolist(),
    }
    write_parquet(root / "meta/episodes/chunk-000/file-000.parquet", pa.table(rows))
    return root


@pytest.mark.parametrize("make, tolerance", [(make_v21, 2), (make_v30, 12)])
def test_every_value_and_frame_round_trips(tmp_path, make, tolerance):
    summary = convert_lerobot(make(tmp_path / "ds"), tmp_path / "out.zarr")
    assert summary["keys"] == {"observation.state": "state", CAMERA: "top", "action": "action"}
    store = ReplayBuffer.open(tmp_path / "out.zarr", lazy_frames=False)
    assert store.episode_ends.tolist() == np.cumsum(LENGTHS).tolist()
    for i, n in enumerate(LENGTHS):
        got, want = store.episode(i), episode(i, n)
        np.testing.assert_array_equal(got["state"], want["observation.state"])
        np.testing.assert_array_equal(got["action"], want["action"])
        assert got["top"].dtype == np.uint8 and got["top"].shape == (n, 32, 32, 3)
        error = np.abs(got["top"].astype(int) - want["frames"]).max()
        assert error <= tolerance, f"frames differ by {error} (codec tolerance {tolerance})"


def test_info_totals_that_disagree_with_the_files_are_reported(tmp_path):
    summary = convert_lerobot(make_v21(tmp_path / "ds", total_frames=999), tmp_path / "o.zarr")
    assert summary["frames"] == sum(LENGTHS)
    assert summary["notes"] == [
        "info.json says total_frames=999, the files hold 15: used the files"
    ]


def test_a_missing_column_is_named(tmp_path):
    root = make_v21(tmp_path / "ds")
    path = root / "data/chunk-000/episode_000001.parquet"
    pq.write_table(pq.read_table(path).drop(["action"]), path)
    with pytest.raises(DatasetError, match=r"episode_000001.parquet has no column 'action'"):
        convert_lerobot(root, tmp_path / "o.zarr")


def test_a_mismatched_episode_index_is_named(tmp_path):
    root = make_v21(tmp_path / "ds")
    path = root / "data/chunk-000/episode_000001.parquet"
    tab = pq.read_table(path)
    tab = tab.set_column(
        tab.column_names.index("episode_index"), "episode_index", pa.array([7] * tab.num_rows)
    )
    pq.write_table(tab, path)
    with pytest.raises(DatasetError, match="holds no rows of episode 1.*disagree"):
        convert_lerobot(root, tmp_path / "o.zarr")


def test_an_unreadable_video_is_named(tmp_path):
    root = make_v21(tmp_path / "ds")
    (root / f"videos/chunk-000/{CAMERA}/episode_000000.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="episode_000000.mp4 cannot be decoded"):
        convert_lerobot(root, tmp_path / "o.zarr")


def test_a_converted_push_t_layout_trains_through_task_zarr(tmp_path):
    from shortcut_policy.train import train
    from tests.conftest import quick_run

    convert_lerobot(make_v30(tmp_path / "ds"), tmp_path / "pt.zarr")
    cfg = quick_run(
        tmp_path,
        f"dataset.path={tmp_path / 'pt.zarr'}",
        "task.obs_keys=[state]",
        "task.horizon=4",
        "task.n_action_steps=2",
        "dataset.val_fraction=0",
        "train.steps=2",
        "train.batch_size=4",
        task="zarr",
    )
    run = train(cfg)
    assert run.step == 2 and run.data.spec["obs_shapes"] == {"state": [2]}


def test_the_command_prints_which_keys_became_which(tmp_path):
    import subprocess
    import sys

    root = make_v21(tmp_path / "ds")
    out = tmp_path / "o.zarr"
    command = [sys.executable, "-m", "shortcut_policy.convert", f"lerobot={root}", f"out={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "observation.state" in done.stdout and "-> data/state (2,)" in done.stdout
    assert f"task=zarr dataset.path={out} task.obs_keys=[state]" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists; pass overwrite=true" in again.stderr


def test_frames_stream_in_blocks_and_give_the_same_store(tmp_path, monkeypatch):
    """With a block of one frame (as a dataset far larger than memory would be cut), the store
    holds exactly what the default block size gives."""
    import shortcut_policy.data.lerobot as lerobot

    root = make_v30(tmp_path / "ds")
    convert_lerobot(root, tmp_path / "whole.zarr")
    monkeypatch.setattr(lerobot, "BLOCK_BYTES", 1)
    convert_lerobot(root, tmp_path / "blocks.zarr")
    whole = ReplayBuffer.open(tmp_path / "whole.zarr", lazy_frames=False)
    blocks = ReplayBuffer.open(tmp_path / "blocks.zarr", lazy_frames=False)
    np.testing.assert_array_equal(whole.episode_ends, blocks.episode_ends)
    for key in ("state", "action", "top"):
        np.testing.assert_array_equal(whole.data[key], blocks.data[key])


def test_a_video_span_asked_out_of_order_is_read_again(tmp_path):
    from shortcut_policy.data.lerobot import VideoReader

    root = make_v21(tmp_path / "ds")
    reader = VideoReader(root / f"videos/chunk-000/{CAMERA}/episode_000001.mp4")  # 9 frames
    late = np.concatenate(list(reader.blocks(0.55, np.inf)))
    early = np.concatenate(list(reader.blocks(-np.inf, 0.55)))
    assert len(late) == 3 and len(early) == 6
    assert early[0].mean() < late[0].mean()  # frames get brighter with time


def test_a_failed_conversion_leaves_no_store(tmp_path):
    root = make_v21(tmp_path / "ds")
    (root / f"videos/chunk-000/{CAMERA}/episode_000001.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="episode_000001.mp4 cannot be decoded"):
        convert_lerobot(root, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.zarr.tmp").exists()
