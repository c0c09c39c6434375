"""What the demo generators share: a metadata file written last marks a complete dataset.

:mod:`sfc.data.demo` (DAVIS), :mod:`sfc.data.demo_jhmdb` and :mod:`sfc.data.demo_vip` each write
their files, then a JSON of the arguments that made them; a rerun with the same arguments finds that
JSON, the expected files and nothing missing, and does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["is_complete", "read_meta"]


def read_meta(path: Path) -> dict | None:
    """The metadata JSON at ``path``, or None when it is missing or unreadable."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_complete(
    meta_path: Path, meta: dict, *, files: Iterable[Path] = (), counts: Iterable[tuple[Path, str, int]] = ()
) -> bool:
    """True when ``meta_path`` holds exactly ``meta`` and the dataset's files are all there.

    Args:
        meta_path: the metadata JSON (written last by the generator).
        meta: the arguments of this call, as the generator writes them.
        files: files that must exist.
        counts: ``(folder, glob pattern, n)``: each folder must hold exactly ``n`` matching files.
    """
    if read_meta(meta_path) != meta:
        return False
    if not all(Path(f).is_file() for f in files):
        return False
    return all(len(list(Path(folder).glob(pattern))) == n for folder, pattern, n in counts)
