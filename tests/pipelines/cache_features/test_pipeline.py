"""``cache_features`` as Kedro runs it: structure, in-memory catalog, registry, real KedroSession.

The session test runs ``KedroSession`` in a child process through the ``kedro_session`` fixture of
``tests/pipelines/conftest.py`` (conf copied to ``tmp_path``, catalog and MLflow pointed into it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from sfc.config import BackboneConfig, SemanticConfig
from sfc.datasets.feature_cache import FeatureCacheDataset
from sfc.features.cache import FeatureCache, backbone_key
from sfc.models.backbones import build_backbone
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines import evaluate_davis
from sfc.pipelines.cache_features import create_pipeline
from tests.pipelines.cache_features import BACKBONE, CACHE, NO_SEMANTIC, RUNTIME, SEQUENCES
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.evaluate_davis import davis_params

PARAMS = {"params:davis", "params:backbone", "params:semantic", "params:runtime", "params:cache_features"}
INPUTS = PARAMS | {"feature_cache_previous"}


def test_pipeline_structure() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == INPUTS
    assert pipeline.outputs() == {"feature_cache"}
    assert [n.name for n in pipeline.nodes] == ["select_davis_sequences", "plan_feature_cache"]


def test_runs_together_with_evaluate_davis() -> None:
    both = create_pipeline() + evaluate_davis.create_pipeline()
    names = [n.name for n in both.nodes]
    assert names.count("select_davis_sequences") == 1 and "plan_feature_cache" in names
    assert "cache_features" in register_pipelines()


def test_in_memory_catalog(tiny_davis: Path, tmp_path: Path) -> None:
    catalog = DataCatalog()
    catalog["params:davis"] = davis_params(tiny_davis, scale=0.25, max_frames=3)
    catalog["params:backbone"] = BACKBONE
    catalog["params:semantic"] = NO_SEMANTIC
    catalog["params:runtime"] = RUNTIME
    catalog["params:cache_features"] = CACHE
    catalog["feature_cache"] = FeatureCacheDataset(path=str(tmp_path / "features"))
    catalog["feature_cache_previous"] = FeatureCacheDataset(path=str(tmp_path / "features"))
    assert set(SequentialRunner().run(create_pipeline(), catalog)) == {"feature_cache"}
    cache = FeatureCache(tmp_path / "features")
    key = backbone_key(BackboneConfig.from_dict(BACKBONE), 0.25)
    assert sorted(e["sequence"] for e in cache.entries()) == SEQUENCES
    assert cache.open(key, "demo-00").shape == (3, 256, 2, 3)  # 64x96 * 0.25 = 16x24 -> /8


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_session_reuses_entries_and_keys_by_checkpoint(
    tiny_davis: Path, tmp_path: Path, kedro_session: KedroSessionRun
) -> None:
    ckpt = tmp_path / "semantic.pth"
    torch.save(build_backbone("resnet18", seed=1).state_dict(), ckpt)
    params = {
        "davis": {"root": str(tiny_davis), "max_frames": 3, "scale": 0.25},
        "backbone": BACKBONE,
        "semantic": {"arch": "resnet18", "checkpoint": str(ckpt), "seed": 0},
        "runtime": {"device": "cpu"},
    }
    fine_cfg, sem_cfg = BackboneConfig.from_dict(BACKBONE), SemanticConfig.from_dict(params["semantic"])
    proc = kedro_session(["cache_features"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = tmp_path / "data" / "04_feature" / "features"
    fine, sem_a = backbone_key(fine_cfg, 0.25), backbone_key(sem_cfg, 0.25)
    assert sorted(p.name for p in root.iterdir()) == sorted([fine.slug, sem_a.slug])
    before = _mtimes(root)
    assert len(before) == 2 * 2 * len(SEQUENCES)  # npy + json per (network, sequence)

    # Same backbone, same checkpoint path with new bytes: backbone entries reused, new semantic entries.
    torch.save(build_backbone("resnet18", seed=2).state_dict(), ckpt)
    sem_b = backbone_key(sem_cfg, 0.25)
    assert sem_b != sem_a
    proc = kedro_session(["cache_features"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = _mtimes(root)
    assert {k: after[k] for k in before} == before  # nothing rewritten
    assert sorted(p.name for p in root.iterdir()) == sorted([fine.slug, sem_a.slug, sem_b.slug])
    meta = json.loads((root / sem_b.slug / "demo-01.json").read_text())
    assert meta["weights"] == sem_b.weights and meta["source"] == str(ckpt)
    assert meta["frames"] == ["00000", "00001", "00002"]
