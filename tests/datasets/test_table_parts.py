"""Tests of :class:`sfc.datasets.table_parts.TablePartsDataset` (the fusion search's resume store)."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from sfc.datasets.table_parts import TablePartsDataset


def test_empty_store_loads_as_empty(tmp_path: Path) -> None:
    ds = TablePartsDataset(path=str(tmp_path / "missing"))
    assert ds.load() == {} and not ds.exists()


def test_round_trip_lazy_order_and_permissions(tmp_path: Path) -> None:
    ds = TablePartsDataset(path=str(tmp_path / "parts"))
    made: list[str] = []

    def part(name: str, value: int):
        def make() -> pd.DataFrame:
            made.append(name)
            return pd.DataFrame({"x": [value, value + 1]})

        return make

    ds.save({"b-1": part("b", 1), "a-2": pd.DataFrame({"x": [9]})})
    assert made == ["b"]
    loaded = ds.load()
    assert sorted(loaded) == ["a-2", "b-1"] and loaded["b-1"]["x"].tolist() == [1, 2]
    mode = stat.S_IMODE((tmp_path / "parts" / "b-1.parquet").stat().st_mode)
    assert mode & 0o044 == 0o044  # readable by group and others (umask permitting), not a 0600 temp file
    assert [p.name for p in (tmp_path / "parts").iterdir() if p.name.startswith(".")] == []


def test_failed_part_leaves_earlier_parts_and_no_temporary_file(tmp_path: Path) -> None:
    ds = TablePartsDataset(path=str(tmp_path))

    def boom() -> pd.DataFrame:
        raise RuntimeError("interrupted")

    with pytest.raises(DatasetError, match="interrupted"):  # Kedro wraps the error of a save
        ds.save({"a": pd.DataFrame({"x": [1]}), "b": boom})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]


def test_unreadable_part_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    TablePartsDataset(path=str(tmp_path)).save({"good": pd.DataFrame({"x": [1]})})
    assert list(TablePartsDataset(path=str(tmp_path)).load()) == ["good"]
    assert "bad.parquet: unreadable stored part" in caplog.text


@pytest.mark.parametrize("data", [[1], {"../escape": pd.DataFrame()}, {"a": "not a table"}])
def test_bad_data(tmp_path: Path, data: object) -> None:
    with pytest.raises(DatasetError):
        TablePartsDataset(path=str(tmp_path)).save(data)  # type: ignore[arg-type]
