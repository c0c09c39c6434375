"""Tests of :class:`sfc.datasets.feature_cache.FeatureCacheDataset`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kedro.io import DatasetError

from sfc.datasets.feature_cache import FeatureCacheDataset
from sfc.features.cache import FeatureCache, FeatureJob, FeatureKey, MissingFeaturesError

KEY = FeatureKey("resnet18", "random:seed0", 0.5, "layer3")
FRAMES = ["00000", "00001", "00002"]


def _jobs(calls: list[str]) -> dict[str, FeatureJob]:
    def compute_for(seq: str):
        def compute() -> Iterator[torch.Tensor]:
            calls.append(seq)
            return iter(F.normalize(torch.randn(len(FRAMES), 16, 4, 6), dim=1).unbind(0))

        return compute

    return {f"{KEY.slug}/{seq}": FeatureJob(KEY, seq, FRAMES, compute_for(seq)) for seq in ("bear", "rhino")}


def test_save_logs_and_reuses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sfc.datasets.feature_cache")
    ds = FeatureCacheDataset(path=str(tmp_path / "features"), metadata={"kedro-viz": {"layer": "feature"}})
    assert not ds.exists()
    with pytest.raises(MissingFeaturesError):  # the handle works before anything is cached
        ds.load().open(KEY, "bear")

    calls: list[str] = []
    ds.save(_jobs(calls))
    assert calls == ["bear", "rhino"] and ds.exists()
    first = caplog.text
    assert f"features {KEY.slug}/bear:" in first and "MiB (T=3, 16x4x6), computed in" in first
    assert "2 entries, 2 computed" in first

    caplog.clear()
    ds.save(_jobs(calls))
    assert calls == ["bear", "rhino"]  # nothing recomputed
    assert f"features {KEY.slug}/rhino:" in caplog.text and "reused (cached)" in caplog.text
    assert "2 entries, 0 computed" in caplog.text and " MiB" in caplog.text

    cache = ds.load()
    assert isinstance(cache, FeatureCache) and cache.open(KEY, "rhino").shape == (3, 16, 4, 6)
    assert {e["sequence"] for e in cache.entries()} == {"bear", "rhino"}


def test_save_accepts_lazy_callables(tmp_path: Path) -> None:
    calls: list[str] = []
    ds = FeatureCacheDataset(path=str(tmp_path))
    ds.save({k: (lambda job=job: job) for k, job in _jobs(calls).items()})
    assert calls == ["bear", "rhino"]


@pytest.mark.parametrize("data", [[1, 2], {"x": "not a job"}])
def test_save_rejects_bad_data(tmp_path: Path, data: object) -> None:
    ds = FeatureCacheDataset(path=str(tmp_path / "features"))
    with pytest.raises(DatasetError, match="features.*expected"):
        ds.save(data)  # type: ignore[arg-type]


def test_describe(tmp_path: Path) -> None:
    assert str(tmp_path) in str(FeatureCacheDataset(path=str(tmp_path)))
