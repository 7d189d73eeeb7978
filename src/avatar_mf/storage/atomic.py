"""Crash-safe file writes (blocking: call them from a worker thread, never the event loop).

:func:`atomic_write` writes a temporary file in the target's directory, fsyncs it, renames it
over the target with :func:`os.replace` (atomic on POSIX file systems) and fsyncs the directory.
A reader therefore sees the old file or the new one, never a part of either, and a crash at any
point keeps the previous version. What a crash can leave behind is a temporary file, named with
:data:`TEMP_PREFIX`, which :func:`remove_temp_files` deletes at the next start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "atomic_write",
    "ensure_dir",
    "fsync_dir",
    "read_limited",
    "remove_temp_files",
    "unlink_durably",
]

#: Name prefix of temporary files; nothing else in a store starts with it.
TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each made durable in its parent."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o750)
        fsync_dir(directory.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: all or nothing, durable when this returns."""
    ensure_dir(path.parent)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def unlink_durably(path: Path) -> bool:
    """Remove ``path`` and make the removal durable; ``False`` if it did not exist."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def read_limited(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or ``None`` if it is larger than ``limit`` (read no further)."""
    with path.open("rb") as file:
        data = file.read(limit + 1)
    return None if len(data) > limit else data


def remove_temp_files(root: Path) -> list[Path]:
    """Delete every temporary file left under ``root`` by an interrupted write.

    Only safe while no write is in progress (the store holds its write lock).
    """
    removed: list[Path] = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                path = Path(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    for path in {p.parent for p in removed}:
        fsync_dir(path)
    return removed
