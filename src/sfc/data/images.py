"""The one image reader of the benchmarks' readers, and the one ordering of frame file names.

Each benchmark reader (:mod:`sfc.evaluation.davis.reader`, ``jhmdb.reader``, ``vip.reader``) reads
its frames through :func:`read_rgb`, raising its own error type with the same message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["read_rgb", "sort_stems"]


def sort_stems(stems: Sequence[str]) -> list[str]:
    """Sort file stems numerically when they are all digits, lexicographically otherwise."""
    if stems and all(s.isdigit() for s in stems):
        return sorted(stems, key=lambda s: (int(s), s))
    return sorted(stems)


def read_rgb(path: str | os.PathLike[str], *, error: type[Exception] = ValueError, what: str = "frame") -> np.ndarray:
    """Read one image as RGB, fully decoded (a truncated file fails here, not later).

    Args:
        path: image file.
        error: the exception type to raise (the calling reader's format error).
        what: what the file should be, for the message (``"JPEG frame"``, ``"PNG frame"``).

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        error: the file is missing, not an image, or truncated/corrupt; the message names the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB") if img.mode != "RGB" else img
            return np.asarray(rgb, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise error(f"{path}: frame file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise error(f"{path}: expected a readable {what}, found an unreadable or truncated image ({exc})") from exc
