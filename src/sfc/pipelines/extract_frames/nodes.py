"""Nodes of ``extract_frames``: a thin wrapper over :func:`sfc.data.frames.build_frame_index`.

Incrementality: the node reads the index and rejects of the previous run through two read-only
catalog entries (``frame_index_previous``, ``frame_rejects_previous``:
:class:`sfc.datasets.optional_table.OptionalTableDataset`, ``None`` on the first run) that point at
the same files as its outputs ``frame_index`` and ``frame_rejects``. Kedro forbids one dataset as
both input and output of a node, and a cache file owned by the library would hide I/O from the
catalog; two entries on one file keep all I/O in the catalog and the library pure.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from sfc.config import FramesConfig
from sfc.data.frames import build_frame_index as _build_frame_index

logger = logging.getLogger(__name__)

def build_frame_index(
    frames: dict[str, Any],
    previous_index: pd.DataFrame | None,
    previous_rejects: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Scan ``frames.root`` into the frame index, reusing the previous run's rows of unchanged files.

    Args:
        frames: ``frames.*`` parameters (:class:`sfc.config.FramesConfig`).
        previous_index: the index written by the last run, or None.
        previous_rejects: the rejects written by the last run, or None.

    Returns:
        frame_index: one row per frame (path, source, video, frame, width, height, size, mtime_ns,
            verified).
        frame_rejects: one row per rejected file or folder (path, source, video, reason, size,
            mtime_ns).
        summary: counts and timings.

    Raises:
        sfc.config.ConfigError: unknown, missing or invalid ``frames.*`` keys.
        sfc.data.frames.FrameIndexError: missing root, wrong kind, or no frame found.
    """
    options = FramesConfig.from_dict(frames).to_dict()
    result = _build_frame_index(
        options.pop("root"), options.pop("kind"),
        previous_index=previous_index, previous_rejects=previous_rejects, **options,
    )
    return result.index, result.rejects, result.summary
