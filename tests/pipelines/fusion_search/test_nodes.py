"""Node-level tests of ``fusion_search``: grid building, validation list, cache errors, resume, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.figure
import pandas as pd
import pytest
import torch

from sfc.config import BackboneConfig, ConfigError, FusionConfig, FusionSearchConfig, PropagationConfig
from sfc.datasets.table_parts import TablePartsDataset
from sfc.evaluation.davis import search
from sfc.evaluation.davis.reader import DavisFormatError
from sfc.features.cache import (
    FeatureCache,
    FeatureEntry,
    MissingFeaturesError,
    StaleFeaturesError,
    backbone_key,
)
from sfc.models.backbones import build_backbone
from sfc.pipelines.fusion_search.nodes import (
    best_parameters,
    collect_fusion_search,
    plot_fusion_heatmap,
    search_fusion_grid,
    select_validation_sequences,
    summarize_fusion_search,
)
from tests.pipelines.evaluate_davis import BACKBONE, FUSION, PROPAGATION, RUNTIME, davis_params

SEMANTIC = {"arch": "resnet18", "checkpoint": None, "seed": 1}
GRID = {"sequences": None, "lambdas": [0.5, 2.0], "topks": [2, 4], "radii": [2, 3], "temperatures": [0.1], "contexts": None}


def _points(grid: dict[str, Any]) -> list:
    return search.grid_points(
        FusionSearchConfig.from_dict(grid), FusionConfig.from_dict(FUSION), PropagationConfig.from_dict(PROPAGATION)
    )


def test_grid_null_axes_fall_back_and_empty_axes_fail() -> None:
    points = _points(GRID)
    assert len(points) == 8 and {p.context for p in points} == {PROPAGATION["context"]}
    only = _points({k: None for k in GRID})
    assert [p.as_dict() for p in only] == [
        {"lambda": 1.75, "topk": 5, "radius": 4.0, "temperature": 0.05, "context": 3}
    ]
    with pytest.raises(ConfigError, match=r"fusion_search.radii: an empty list leaves the grid empty"):
        _points({**GRID, "radii": []})
    with pytest.raises(ValueError, match="invalid fusion_search grid.*lambda"):
        _points({**GRID, "lambdas": [-1]})


def test_validation_list_unknown_sequences_are_named(tiny_davis: Path) -> None:
    davis = davis_params(tiny_davis)
    assert select_validation_sequences(davis, GRID) == ["demo-00", "demo-01"]
    assert select_validation_sequences(davis, {**GRID, "sequences": ["demo-01"]}) == ["demo-01"]
    assert select_validation_sequences(davis, {**GRID, "sequences": "demo-01"}) == ["demo-01"]  # from --params
    with pytest.raises(DavisFormatError, match="unknown sequence.*'nope'.*demo-00"):
        select_validation_sequences(davis, {**GRID, "sequences": ["demo-00", "nope"]})
    with pytest.raises(ConfigError, match="empty list"):
        select_validation_sequences(davis, {**GRID, "sequences": []})


def _fill_cache(root: Path, davis_root: Path, params: dict, scale: float, frames: int) -> None:
    from sfc.evaluation.davis.reader import iter_frames, load_sequence
    from sfc.models.backbones import iter_features

    cache = FeatureCache(root)
    model = build_backbone(params["arch"], seed=params["seed"])
    key = backbone_key(BackboneConfig.from_dict(params), scale)
    for name in ("demo-00", "demo-01"):
        seq = load_sequence(davis_root, name, max_frames=frames)
        stream = iter_features(model, iter_frames(seq), scale=scale, device="cpu")
        cache.write(FeatureEntry(key, name, seq.frame_names, stream))


@pytest.fixture(scope="module")
def cached(tiny_davis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    _fill_cache(root, tiny_davis, BACKBONE, 0.5, 4)
    _fill_cache(root, tiny_davis, SEMANTIC, 0.5, 4)
    return root


def _plan(tiny_davis: Path, cache: Any, stored: dict | None = None, **over: Any):
    davis = davis_params(tiny_davis, scale=0.5, max_frames=4)
    args = {
        "sequences": ["demo-00", "demo-01"], "feature_cache": cache, "stored_parts": stored or {},
        "davis": davis, "backbone": BACKBONE, "semantic": SEMANTIC, "fusion": FUSION, "propagation": PROPAGATION,
        "fusion_search": GRID, "runtime": RUNTIME,
    }
    args.update(over)
    return search_fusion_grid(**args)


def _search(tiny_davis: Path, cache_root: Path, store: Path, **over: Any) -> pd.DataFrame:
    """Plan, write the parts through the store, collect: what the pipeline does."""
    parts = TablePartsDataset(path=str(store))
    todo, plan = _plan(tiny_davis, FeatureCache(cache_root) if isinstance(cache_root, Path) else cache_root,
                       parts.load(), **over)
    parts.save(todo)
    return collect_fusion_search(parts.load(), plan)


def test_search_summary_heatmap_and_best_parameters(tiny_davis: Path, cached: Path, tmp_path: Path) -> None:
    table = _search(tiny_davis, cached, tmp_path / "parts")
    assert len(table) == 8 * 2 and set(table["sequence"]) == {"demo-00", "demo-01"}
    assert list(table["sequence"][:2]) == ["demo-00", "demo-01"] and list(table["config"][:2]) == [0, 0]
    assert table["JF_mean"].between(0, 1).all()
    summary, best, tracked = summarize_fusion_search(table)
    assert len(summary) == 8 and summary["JF_mean"].is_monotonic_decreasing
    assert best["JF_mean"] == pytest.approx(summary.loc[0, "JF_mean"], abs=1e-6)
    assert tracked["best_JF_mean"]["value"] == best["JF_mean"]
    fig = plot_fusion_heatmap(summary)
    assert isinstance(fig, matplotlib.figure.Figure)
    params = best_parameters(best, davis_params(tiny_davis, scale=0.5), BACKBONE, SEMANTIC, FUSION)
    assert params["fusion"]["lambda"] == best["lambda"] and params["propagation"]["topk"] == best["topk"]
    assert params["semantic"] == SEMANTIC and params["davis"] == {"scale": 0.5}
    # with -e fusion_best, JHMDB and VIP use the same configuration instead of the paper's
    assert params["jhmdb"] == {"settings": "shared"} and params["vip"] == {"settings": "shared"}
    assert all(type(v) in (int, float) for v in params["propagation"].values())


def test_search_refuses_missing_semantic_stale_cache_and_other_scale(tiny_davis: Path, cached: Path, tmp_path: Path) -> None:
    cache = FeatureCache(cached)
    with pytest.raises(ValueError, match="semantic.arch is null"):
        _plan(tiny_davis, cache, semantic={"arch": None, "checkpoint": None, "seed": 0})
    with pytest.raises(MissingFeaturesError, match="cache_features"):
        _plan(tiny_davis, cache, davis=davis_params(tiny_davis, scale=0.25, max_frames=4))
    # A checkpoint whose features were never cached, while a random-init entry of that arch exists.
    ckpt = tmp_path / "sem.pth"
    torch.save(build_backbone("resnet18", seed=5).state_dict(), ckpt)
    with pytest.raises(StaleFeaturesError, match="checkpoint"):
        _plan(tiny_davis, cache, semantic={"arch": "resnet18", "checkpoint": str(ckpt), "seed": 0})
    with pytest.raises(ConfigError, match="fusion_search.topks: an empty list"):
        _plan(tiny_davis, cache, fusion_search={**GRID, "topks": []})


def test_search_on_different_grids_needs_align_resize(tiny_davis: Path, tmp_path: Path) -> None:
    # Semantic features at another scale stand in for a backbone of another stride.
    root = tmp_path / "features"
    _fill_cache(root, tiny_davis, BACKBONE, 0.5, 4)
    cache = FeatureCache(root)
    fine_key = backbone_key(BackboneConfig.from_dict(BACKBONE), 0.5)
    sem_key = backbone_key(BackboneConfig.from_dict(SEMANTIC), 0.5)

    class Coarse:  # a cache whose semantic entry is on a coarser grid
        def open(self, key, sequence, frames=None):
            if key == sem_key:
                feats = cache.open(fine_key, sequence, frames)
                return [torch.nn.functional.avg_pool2d(f[None], 2)[0] for f in feats]
            return cache.open(key, sequence, frames)

    with pytest.raises(ValueError, match="sequence 'demo-00': cannot fuse.*different spatial sizes.*fusion.align=resize"):
        _plan(tiny_davis, Coarse(), sequences=["demo-00"])  # at planning, before any scoring
    table = _search(
        tiny_davis, Coarse(), tmp_path / "p2", sequences=["demo-00"], fusion={**FUSION, "align": "resize"}
    )
    assert len(table) == 8 and isinstance(table, pd.DataFrame)


def test_search_resumes_finished_sequences_from_the_store(
    tiny_davis: Path, cached: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "parts"
    first = _search(tiny_davis, cached, store)
    parts = sorted(p.name for p in store.glob("*.parquet"))
    assert len(parts) == 2 and parts[0].startswith("demo-00-") and parts[1].startswith("demo-01-")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished sequence was recomputed")

    monkeypatch.setattr(search, "search_sequence", boom)
    todo, plan = _plan(tiny_davis, FeatureCache(cached), TablePartsDataset(path=str(store)).load())
    assert todo == {} and [p + ".parquet" for p in plan] == parts
    pd.testing.assert_frame_equal(first, _search(tiny_davis, cached, store))
    # Another grid is another signature: planned (and computed when written), not served from old rows.
    todo, _ = _plan(tiny_davis, FeatureCache(cached), TablePartsDataset(path=str(store)).load(),
                    fusion_search={**GRID, "topks": [3]})
    assert len(todo) == 2
    with pytest.raises(AssertionError, match="recomputed"):
        next(iter(todo.values()))()


def test_collect_names_a_missing_part() -> None:
    with pytest.raises(ValueError, match="missing from the store.*demo-00-abc"):
        collect_fusion_search({}, ["demo-00-abc"])
