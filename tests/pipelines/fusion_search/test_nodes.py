"""Node-level tests of ``fusion_search``: grid building, validation list, cache errors, outputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import pandas as pd
import pytest
import torch

from sfc.data.davis import DavisFormatError
from sfc.features.cache import (
    FeatureCache,
    FeatureJob,
    MissingFeaturesError,
    StaleFeaturesError,
    backbone_key,
)
from sfc.models.backbones import build_backbone
from sfc.pipelines.fusion_search.nodes import (
    best_parameters,
    build_grid,
    plot_fusion_heatmap,
    search_fusion_grid,
    select_validation_sequences,
    summarize_fusion_search,
)
from tests.pipelines.evaluate_davis import BACKBONE, FUSION, PROPAGATION, davis_params

SEMANTIC = {"arch": "resnet18", "checkpoint": None, "seed": 1}
GRID = {"sequences": None, "lambdas": [0.5, 2.0], "topks": [2, 4], "radii": [2, 3], "temperatures": [0.1], "contexts": None}


def test_build_grid_null_axes_fall_back_and_empty_axes_fail() -> None:
    points = build_grid(GRID, FUSION, PROPAGATION)
    assert len(points) == 8 and {p.context for p in points} == {PROPAGATION["context"]}
    only = build_grid({k: None for k in GRID}, FUSION, PROPAGATION)
    assert [p.as_dict() for p in only] == [
        {"lambda": 1.75, "topk": 5, "radius": 4.0, "temperature": 0.05, "context": 3}
    ]
    with pytest.raises(ValueError, match=r"fusion_search.radii is an empty list"):
        build_grid({**GRID, "radii": []}, FUSION, PROPAGATION)
    with pytest.raises(ValueError, match="invalid fusion_search grid.*lambda"):
        build_grid({**GRID, "lambdas": [-1]}, FUSION, PROPAGATION)


def test_validation_list_unknown_sequences_are_named(tiny_davis: Path) -> None:
    davis = davis_params(tiny_davis)
    assert select_validation_sequences(davis, GRID) == ["demo-00", "demo-01"]
    assert select_validation_sequences(davis, {**GRID, "sequences": ["demo-01"]}) == ["demo-01"]
    assert select_validation_sequences(davis, {**GRID, "sequences": "demo-01"}) == ["demo-01"]  # from --params
    with pytest.raises(DavisFormatError, match="unknown sequence.*'nope'.*demo-00"):
        select_validation_sequences(davis, {**GRID, "sequences": ["demo-00", "nope"]})
    with pytest.raises(ValueError, match="empty list"):
        select_validation_sequences(davis, {**GRID, "sequences": []})


def _fill_cache(root: Path, davis_root: Path, params: dict, scale: float, frames: int) -> None:
    from sfc.data.davis import iter_frames, load_sequence
    from sfc.models.backbones import iter_features

    cache = FeatureCache(root)
    model = build_backbone(params["arch"], seed=params["seed"])
    for name in ("demo-00", "demo-01"):
        seq = load_sequence(davis_root, name, max_frames=frames)
        cache.put(
            FeatureJob(
                backbone_key(params, scale), name, seq.frame_names,
                lambda seq=seq: iter_features(model, iter_frames(seq), scale=scale, device="cpu"),
            )
        )


@pytest.fixture(scope="module")
def cached(tiny_davis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    _fill_cache(root, tiny_davis, BACKBONE, 0.5, 4)
    _fill_cache(root, tiny_davis, SEMANTIC, 0.5, 4)
    return root


def _search(tiny_davis: Path, cache_root: Path, **over):
    davis = davis_params(tiny_davis, scale=0.5, max_frames=4)
    args = {
        "sequences": ["demo-00", "demo-01"], "feature_cache": FeatureCache(cache_root), "davis": davis,
        "backbone": BACKBONE, "semantic": SEMANTIC, "fusion": FUSION, "propagation": PROPAGATION,
        "fusion_search": GRID, "runtime": {"device": "cpu"},
    }
    args.update(over)
    return search_fusion_grid(**args)


def test_search_summary_heatmap_and_best_parameters(tiny_davis: Path, cached: Path) -> None:
    table = _search(tiny_davis, cached)
    assert len(table) == 8 * 2 and set(table["sequence"]) == {"demo-00", "demo-01"}
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
    assert all(type(v) in (int, float) for v in params["propagation"].values())


def test_search_refuses_missing_semantic_stale_cache_and_other_scale(tiny_davis: Path, cached: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="semantic.arch is null"):
        _search(tiny_davis, cached, semantic={"arch": None, "checkpoint": None, "seed": 0})
    with pytest.raises(MissingFeaturesError, match="cache_features"):
        _search(tiny_davis, cached, davis=davis_params(tiny_davis, scale=0.25, max_frames=4))
    # A checkpoint whose features were never cached, while a random-init entry of that arch exists.
    ckpt = tmp_path / "sem.pth"
    torch.save(build_backbone("resnet18", seed=5).state_dict(), ckpt)
    with pytest.raises(StaleFeaturesError, match="checkpoint"):
        _search(tiny_davis, cached, semantic={"arch": "resnet18", "checkpoint": str(ckpt), "seed": 0})
    with pytest.raises(ValueError, match="fusion_search.topks is an empty list"):
        _search(tiny_davis, cached, fusion_search={**GRID, "topks": []})


def test_search_on_different_grids_needs_align_resize(tiny_davis: Path, tmp_path: Path) -> None:
    # Semantic features at another scale stand in for a backbone of another stride.
    root = tmp_path / "features"
    _fill_cache(root, tiny_davis, BACKBONE, 0.5, 4)
    cache = FeatureCache(root)
    sem_key = backbone_key(SEMANTIC, 0.5)
    fine = cache.open(backbone_key(BACKBONE, 0.5), "demo-00")

    class Coarse:  # a cache whose semantic entry is on a coarser grid
        def open(self, key, sequence, frames=None):
            if key == sem_key:
                feats = cache.open(backbone_key(BACKBONE, 0.5), sequence, frames)
                return [torch.nn.functional.avg_pool2d(f[None], 2)[0] for f in feats]
            return cache.open(key, sequence, frames)

    with pytest.raises(ValueError, match="different spatial sizes.*fusion.align=resize"):
        _search(tiny_davis, root, sequences=["demo-00"], feature_cache=Coarse())
    table = _search(
        tiny_davis, root, sequences=["demo-00"], feature_cache=Coarse(), fusion={**FUSION, "align": "resize"}
    )
    assert len(table) == 8 and isinstance(table, pd.DataFrame)
    assert fine.shape[0] == 4


def test_search_resumes_finished_sequences_from_work_dir(tiny_davis: Path, cached: Path, tmp_path: Path, monkeypatch) -> None:
    import sfc.pipelines.fusion_search.nodes as nodes

    grid = {**GRID, "work_dir": str(tmp_path / "work")}
    first = _search(tiny_davis, cached, fusion_search=grid)
    assert len(list((tmp_path / "work").glob("*.parquet"))) == 2

    def boom(*args, **kwargs):
        raise AssertionError("a finished sequence was recomputed")

    monkeypatch.setattr(nodes, "search_sequence", boom)
    again = _search(tiny_davis, cached, fusion_search=grid)
    pd.testing.assert_frame_equal(first, again)
    # Another grid is another signature: computed, not served from the old rows.
    with pytest.raises(AssertionError, match="recomputed"):
        _search(tiny_davis, cached, fusion_search={**grid, "topks": [3]})
    assert list(first["sequence"][:2]) == ["demo-00", "demo-01"] and list(first["config"][:2]) == [0, 0]
