"""Write a list of RGB frames to a video file (mp4 through imageio-ffmpeg, or gif)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def record_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Save frames (each (H, W, 3) uint8) to ``path``; the extension picks the format.

    ``.mp4`` is H.264 through the ffmpeg binary that imageio-ffmpeg ships (sides should be
    multiples of 16, otherwise ffmpeg's writer resizes them); ``.gif`` is written by Pillow.
    The parent directory is created. Returns the path.
    """
    if len(frames) == 0:
        raise ValueError("record_video needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
    if ext == ".gif":
        # Pillow's gif writer takes the frame duration in milliseconds; loop=0 repeats forever.
        imageio.mimsave(path, frames, format="GIF", duration=1000.0 / fps, loop=0)
    elif ext == ".mp4":
        with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264") as writer:
            for frame in frames:
                writer.append_data(frame)
    else:
        raise ValueError(f"unsupported video extension {ext!r}; use .mp4 or .gif")
    return path
