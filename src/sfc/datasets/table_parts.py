"""Kedro dataset for a folder of Parquet tables written one part at a time (a resumable store).

``<path>/<part_id>.parquet``, one table per part. Like ``PartitionedDataset``, saving takes
``{part_id: DataFrame}`` where a value may be a zero-argument callable returning the DataFrame (lazy
saving: each part is produced and written before the next one is asked for, so an interrupted run
keeps every finished part). Unlike it, each part is written atomically (temp file + rename), and
loading a missing or empty folder gives ``{}`` instead of an error: the store of a first run is
empty. A part that cannot be read back (e.g. a disk that filled up mid-write of another tool) is
left out with a warning, so it is recomputed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from sfc.atomic import atomic_path

logger = logging.getLogger(__name__)

_PART_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class TablePartsDataset(AbstractDataset[Mapping[str, Any], dict[str, pd.DataFrame]]):
    """A folder of ``<part_id>.parquet`` tables.

    Args:
        path: the folder (created on the first save).
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _part_path(self, part_id: str) -> Path:
        if not _PART_ID.match(part_id):
            raise DatasetError(f"{self._path}: part id {part_id!r} is not a safe file name ([A-Za-z0-9._-])")
        return self._path / f"{part_id}.parquet"

    def load(self) -> dict[str, pd.DataFrame]:
        """``{part_id: table}`` of every readable part (``{}`` when the folder is missing or empty)."""
        parts: dict[str, pd.DataFrame] = {}
        if not self._path.is_dir():
            return parts
        for file in sorted(self._path.glob("*.parquet")):
            if file.name.startswith("."):
                continue
            try:
                parts[file.stem] = pd.read_parquet(file)
            except Exception as exc:  # noqa: BLE001 - an unreadable part is recomputed, never fatal
                logger.warning("%s: unreadable stored part (%s); it will be recomputed", file, exc)
        return parts

    def save(self, data: Mapping[str, pd.DataFrame | Callable[[], pd.DataFrame]]) -> None:
        """Write each part atomically, in order; callables are called just before their part is written."""
        if not isinstance(data, Mapping):
            raise DatasetError(f"{self._path}: expected a dict {{part_id: DataFrame}}, got {type(data).__name__}")
        for part_id, value in data.items():
            path = self._part_path(part_id)
            table = value() if callable(value) else value
            if not isinstance(table, pd.DataFrame):
                raise DatasetError(f"{path}: expected a pandas DataFrame, got {type(table).__name__}")
            with atomic_path(path) as tmp:
                table.to_parquet(tmp, index=False)
            logger.debug("Wrote %s (%d rows)", path, len(table))

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
