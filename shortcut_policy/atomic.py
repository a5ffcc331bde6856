"""Writes that a kill cannot leave half done: a file or a folder appears complete or not at all.

Both write beside the target first and then rename, which is atomic on one file system. A
folder (a zarr store) cannot be renamed over an existing one, so the old one is moved aside
first and deleted last; if the new one cannot be moved in, the old one is put back.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the new file to. When the block ends it is
    flushed to disk, given the usual mode (``0o666`` less the umask: some writers, safetensors'
    among them, create private 0600 files) and renamed over ``path``; if the block raises, it is
    removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask() -> int:
    """The process's umask (read by setting it, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace the file ``path`` with ``text`` (UTF-8), atomically."""
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
