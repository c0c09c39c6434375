"""Tests of :class:`sfc.datasets.optional_table.OptionalTableDataset`."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from sfc.datasets.optional_table import OptionalTableDataset

MTIME_NS = 1795633607805906797  # > 2**53: exact only as an integer


def _table() -> pd.DataFrame:
    return pd.DataFrame({"path": ["a", "b"], "size": pd.array([10, None], dtype="Int64"),
                         "mtime_ns": pd.array([MTIME_NS, None], dtype="Int64")})


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_missing_file_loads_none(tmp_path: Path, suffix: str) -> None:
    ds = OptionalTableDataset(filepath=str(tmp_path / f"t{suffix}"))
    assert ds.load() is None and not ds.exists()


def test_parquet_round_trip(tmp_path: Path) -> None:
    _table().to_parquet(tmp_path / "t.parquet")
    loaded = OptionalTableDataset(filepath=str(tmp_path / "t.parquet")).load()
    assert loaded["mtime_ns"].iloc[0] == MTIME_NS


def test_csv_with_integer_dtypes_is_exact(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    ds = OptionalTableDataset(filepath=str(tmp_path / "t.csv"),
                              load_args={"dtype": {"size": "Int64", "mtime_ns": "Int64"}})
    loaded = ds.load()
    assert ds.exists() and loaded["mtime_ns"].iloc[0] == MTIME_NS and pd.isna(loaded["size"].iloc[1])


def test_unreadable_file_loads_none_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "t.parquet").write_bytes(b"half a parquet file")
    with caplog.at_level(logging.WARNING, logger="sfc.datasets.optional_table"):
        assert OptionalTableDataset(filepath=str(tmp_path / "t.parquet")).load() is None
    assert "cannot read the previous table" in caplog.text


def test_read_only_and_suffix_checked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="read-only"):
        OptionalTableDataset(filepath=str(tmp_path / "t.csv")).save(_table())
    with pytest.raises(DatasetError, match=r"expected a \.parquet or \.csv file"):
        OptionalTableDataset(filepath=str(tmp_path / "t.json"))
