"""Read-only Kedro dataset for a table that may not exist yet (``None`` when missing).

Incremental pipelines need last run's output as this run's input, but Kedro forbids a node from
reading and writing the same dataset (it would be a cycle). The convention here: the output has its
normal catalog entry, and a second, read-only entry of this type points at the same file::

    frame_index:            {type: pandas.ParquetDataset, filepath: data/02_intermediate/frame_index.parquet}
    frame_index_previous:   {type: sfc.datasets.optional_table.OptionalTableDataset,
                             filepath: data/02_intermediate/frame_index.parquet}

``load`` returns ``None`` when the file is missing (first run) and also, with a warning, when it
cannot be parsed (e.g. a run killed mid-write): the table is only a cache, so the worst case is a
full rescan, never a failed run. The format follows the suffix: ``.parquet`` or ``.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

_READERS = {".parquet": pd.read_parquet, ".csv": pd.read_csv}


class OptionalTableDataset(AbstractDataset[pd.DataFrame, pd.DataFrame | None]):
    """A Parquet/CSV table read if present; saving is refused.

    Args:
        filepath: ``.parquet`` or ``.csv`` file.
        load_args: keyword arguments of ``pandas.read_parquet`` / ``pandas.read_csv`` (e.g. ``dtype``
            for CSV columns that must stay exact integers).
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, filepath: str, load_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        if self._filepath.suffix.lower() not in _READERS:
            raise DatasetError(f"{self._filepath}: expected a .parquet or .csv file for OptionalTableDataset")
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> pd.DataFrame | None:
        if not self._filepath.is_file():
            logger.info("%s not found: starting without a previous table", self._filepath)
            return None
        reader = _READERS[self._filepath.suffix.lower()]
        try:
            return reader(self._filepath, **self._load_args)
        except Exception as exc:  # noqa: BLE001 - any parse failure of a cache means "no cache"
            logger.warning("%s: cannot read the previous table (%s); starting without it", self._filepath, exc)
            return None

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError(f"{self._filepath}: OptionalTableDataset is read-only (save through the main entry)")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "load_args": self._load_args}
