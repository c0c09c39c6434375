"""Tests of :class:`sfc.datasets.feature_cache.FeatureCacheDataset`: it writes what it is given, streaming."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kedro.io import DatasetError

from sfc.datasets.feature_cache import FeatureCacheDataset
from sfc.features.cache import FeatureCache, FeatureEntry, FeatureKey, MissingFeaturesError

KEY = FeatureKey("resnet18", "random:seed0", 0.5, "layer3")
FRAMES = ["00000", "00001", "00002"]


def _entries(consumed: list[str]) -> dict[str, FeatureEntry]:
    def stream(seq: str) -> Iterator[torch.Tensor]:
        consumed.append(seq)  # runs only when the dataset consumes the generator
        yield from F.normalize(torch.randn(len(FRAMES), 16, 4, 6), dim=1).unbind(0)

    return {f"{KEY.slug}/{seq}": FeatureEntry(KEY, seq, FRAMES, stream(seq)) for seq in ("bear", "rhino")}


def test_save_streams_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sfc.datasets.feature_cache")
    ds = FeatureCacheDataset(path=str(tmp_path / "features"), metadata={"kedro-viz": {"layer": "feature"}})
    assert not ds.exists()
    with pytest.raises(MissingFeaturesError):  # the handle works before anything is cached
        ds.load().open(KEY, "bear")

    consumed: list[str] = []
    entries = _entries(consumed)
    assert consumed == []  # nothing computed before the save
    ds.save(entries)
    assert consumed == ["bear", "rhino"] and ds.exists()
    assert f"features {KEY.slug}/bear:" in caplog.text and "MiB (T=3, 16x4x6), computed in" in caplog.text
    assert "2 entries written" in caplog.text

    cache = ds.load()
    assert isinstance(cache, FeatureCache) and cache.open(KEY, "rhino").shape == (3, 16, 4, 6)
    assert cache.has(KEY, "bear", FRAMES)
    assert {e["sequence"] for e in cache.entries()} == {"bear", "rhino"}


def test_empty_save_writes_nothing(tmp_path: Path) -> None:
    ds = FeatureCacheDataset(path=str(tmp_path / "features"))
    ds.save({})
    assert ds.load().entries() == []


@pytest.mark.parametrize("data", [[1, 2], {"x": "not an entry"}])
def test_save_rejects_bad_data(tmp_path: Path, data: object) -> None:
    ds = FeatureCacheDataset(path=str(tmp_path / "features"))
    with pytest.raises(DatasetError, match="features.*expected"):
        ds.save(data)  # type: ignore[arg-type]


def test_describe(tmp_path: Path) -> None:
    assert str(tmp_path) in str(FeatureCacheDataset(path=str(tmp_path)))
