"""``fusion_search`` as Kedro runs it: structure, and a real session chain
``cache_features`` -> ``fusion_search`` -> ``evaluate_davis -e fusion_best`` with MLflow checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from sfc.pipeline_registry import register_pipelines
from sfc.pipelines import cache_features, evaluate_davis
from sfc.pipelines.fusion_search import create_pipeline
from tests.pipelines.conftest import KedroSessionRun


def test_pipeline_structure_and_registry() -> None:
    pipeline = create_pipeline()
    assert {"feature_cache", "fusion_search_parts_previous"} <= pipeline.inputs()
    assert pipeline.outputs() == {
        "fusion_search_heatmap", "fusion_search_mlflow_metrics", "fusion_best_run",
    }
    assert "fusion_search" in register_pipelines()
    chained = cache_features.create_pipeline() + create_pipeline() + evaluate_davis.create_pipeline()
    assert [n.name for n in chained.nodes].count("select_davis_sequences") == 1


def test_session_cache_search_then_evaluate_best(tiny_davis: Path, tmp_path: Path, kedro_session: KedroSessionRun) -> None:
    params = {
        "davis": {"root": str(tiny_davis), "max_frames": 4, "scale": 0.5},
        "backbone": {"arch": "resnet18", "checkpoint": None, "seed": 0},
        "semantic": {"arch": "resnet18", "checkpoint": None, "seed": 1},
        "runtime": {"device": "cpu", "eval_workers": 1, "overlays": 1},
        "fusion_search": {"lambdas": [0.5, 2.0], "topks": [2, 4], "radii": [2, 3], "temperatures": [0.1], "contexts": [2]},
    }
    proc = kedro_session(["cache_features", "fusion_search"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "data" / "08_reporting" / "fusion_search"
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 8 * 2 and table["JF_mean"].between(0, 1).all()
    best = json.loads((out / "best.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    assert best["JF_mean"] == round(summary["JF_mean"].max(), 6) and best["configurations"] == 8
    assert isinstance(best["topk"], int) and isinstance(best["context"], int)
    assert (out / "heatmap.png").stat().st_size > 1000

    # MLflow: the pipeline run holds the table + heatmap and the best scores; one child run per configuration.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 8
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.metrics["best_JF_mean"] == best["JF_mean"]
    assert {"lambda", "topk", "radius"} <= set(children[0].data.params)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"results.parquet", "heatmap.png", "summary.csv"} <= artifacts

    # The best configuration is a Kedro env that evaluate_davis runs with unchanged.
    best_params = yaml.safe_load((tmp_path / "conf" / "fusion_best" / "parameters.yml").read_text())
    assert best_params["fusion"]["lambda"] == best["lambda"] and best_params["propagation"]["topk"] == best["topk"]
    for name in ("catalog.yml", "mlflow.yml"):  # keep that run's outputs under tmp_path too
        shutil.copy(tmp_path / "conf" / "test" / name, tmp_path / "conf" / "fusion_best" / name)
    proc = kedro_session(["evaluate_davis"], {"davis": {"root": str(tiny_davis), "max_frames": 4}}, env="fusion_best")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    evaluated = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.pipeline_names LIKE '%evaluate_davis%'", output_format="list"
    )
    assert len(evaluated) == 1
    logged = evaluated[0].data.params
    assert float(logged["fusion.lambda"]) == best["lambda"] and int(logged["propagation.topk"]) == best["topk"]
    assert logged["semantic.arch"] == "resnet18" and float(logged["davis.scale"]) == 0.5
    metrics = json.loads((tmp_path / "data" / "08_reporting" / "davis" / "metrics.json").read_text())
    # Same features (float32 here, float16 in the cache), same configuration, same sequences: same score.
    assert abs(metrics["JF_mean"] - best["JF_mean"]) < 0.02
