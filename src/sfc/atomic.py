"""Atomic file writes: the one way this project writes a file that others read.

Every output is written to a temporary file in the destination folder and renamed over the target
with :func:`os.replace`, so a reader (or a rerun after a crash) sees either the old file or the new
one, never a partial file. Temporary files are created with a plain ``open`` (not
``tempfile.mkstemp``, which makes 0600 files), so results get the usual umask permissions (0644 for
a 022 umask) and stay readable by other users of a shared machine.

Use :func:`atomic_path` with any writer that takes a path (``torch.save``, ``DataFrame.to_parquet``,
``PIL.Image.save``, ``np.lib.format.open_memmap``) and the ``write_*`` shortcuts for text and JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "fsync_dir", "previous_path", "remove_stale_temporaries", "write_json", "write_text"]

_TMP_MARK = ".sfc-tmp"


def previous_path(path: str | os.PathLike[str]) -> Path:
    """``last.ckpt`` -> ``last.prev.ckpt``: where :func:`atomic_path` keeps the replaced file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry (the rename itself) to disk; silently skipped where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporary files a killed :func:`atomic_path` left in ``directory``; return how many."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    stale = [p for p in directory.iterdir() if p.is_file() and p.name.startswith(".") and _TMP_MARK in p.name]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, durable: bool = False, keep_previous: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it over ``path``.

    The temporary name keeps ``path``'s suffix (``.fc.<id>.sfc-tmp.pth``) so writers that look at it
    behave as for the real name. On any exception the temporary file is removed and ``path`` is left
    untouched. Parent folders are created.

    Args:
        path: the destination file.
        durable: fsync the file and its folder around the rename (checkpoints: a power loss leaves
            the old or the new file). Off for cheap, regenerable outputs such as masks.
        keep_previous: before the rename, keep the current ``path`` as :func:`previous_path` (hard
            link, else copy), so a complete file exists at every instant.

    Yields:
        the temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{_TMP_MARK}{path.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the temporary file for {path}")
        if durable:
            _fsync_file(tmp)
        if keep_previous and path.exists():
            prev = previous_path(path)
            prev_tmp = prev.with_name(f".{prev.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{_TMP_MARK}{prev.suffix}")
            try:
                os.link(path, prev_tmp)
            except OSError:
                shutil.copy2(path, prev_tmp)
            os.replace(prev_tmp, prev)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends kept as given) atomically; return the path."""
    with atomic_path(path, durable=durable) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, durable: bool = False) -> Path:
    """Write ``data`` as JSON atomically (a trailing newline included); return the path."""
    return write_text(path, json.dumps(data, indent=indent) + "\n", durable=durable)
