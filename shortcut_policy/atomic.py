"""Writes that a kill cannot leave half done: a file or a folder appears complete or not at all.

Both write beside the target first and then rename, which is atomic on one file system. A
folder (a zarr store) cannot be renamed over an existing one, so the old one is moved aside
first and deleted last; if the new one cannot be moved in, the old one is put back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace the file ``path`` with ``text`` (UTF-8), flushed to disk, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def replace_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the finished folder ``tmp`` at ``path``, replacing what is there."""
    tmp, path = Path(tmp), Path(path)
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the old folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
