"""``evaluate_jhmdb`` as Kedro runs it: structure, an in-memory catalog, and a real KedroSession with MLflow.

Runs on a small generated JHMDB-layout dataset (``sfc.data.demo_jhmdb``) with a random-init ResNet-18.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from matplotlib.figure import Figure

from sfc.data.demo_jhmdb import make_demo_jhmdb
from sfc.evaluation.jhmdb.evaluate import PREDICTION_COLUMNS
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines.evaluate_jhmdb import create_pipeline
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.evaluate_davis import BACKBONE, FUSION, PROPAGATION, RUNTIME, SEMANTIC

OUTPUTS = {"jhmdb_metrics", "jhmdb_mlflow_metrics", "jhmdb_per_video", "jhmdb_overlays", "jhmdb_per_joint_chart"}
# jhmdb_per_joint is drawn by render_jhmdb_per_joint, so it is no longer a free output
SINGLE = {"topk": 10, "temperature": 0.07, "radius": 3, "context": 8}
FUSED = {"lambda": 1.0, "topk": 20, "temperature": 0.07, "radius": 5, "context": 8}


@pytest.fixture(scope="module")
def demo_jhmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_jhmdb(tmp_path_factory.mktemp("jhmdb"), n_videos=2, n_frames=6, size=(96, 128))


def jhmdb_params(root: Path, **overrides: Any) -> dict[str, Any]:
    return {"root": str(root), "split": None, "image_size": 96, "settings": "paper", "single": SINGLE,
            "fused": FUSED, **overrides}


def test_pipeline_structure_and_registry() -> None:
    pipeline = create_pipeline()
    assert pipeline.outputs() == OUTPUTS
    assert [n.name for n in pipeline.nodes][:2] == ["select_jhmdb_videos", "predict_jhmdb"]
    assert "evaluate_jhmdb" in register_pipelines()


def test_in_memory_catalog(demo_jhmdb: Path, tmp_path: Path) -> None:
    catalog = DataCatalog()
    for name, value in {
        "jhmdb": jhmdb_params(demo_jhmdb), "backbone": BACKBONE, "semantic": SEMANTIC, "fusion": FUSION,
        "propagation": PROPAGATION, "runtime": {**RUNTIME, "overlays": 1},
    }.items():
        catalog[f"params:{name}"] = value
    catalog["jhmdb_predictions"] = ParquetDataset(filepath=str(tmp_path / "predictions.parquet"))
    catalog["jhmdb_per_joint"] = CSVDataset(filepath=str(tmp_path / "per_joint.csv"), save_args={"index": False})
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    assert set(outputs) == OUTPUTS
    metrics = catalog.load("jhmdb_metrics")
    assert list(metrics)[:2] == ["PCK_0.1", "PCK_0.2"] and metrics["unscored_joints"] == []
    assert 0 <= metrics["PCK_0.1"] <= metrics["PCK_0.2"] <= 100
    predictions = catalog.load("jhmdb_predictions")
    assert set(PREDICTION_COLUMNS) <= set(predictions.columns) and len(predictions) == 2 * 6 * 15
    per_video = catalog.load("jhmdb_per_video")
    assert list(per_video["video"]) == ["demo/video_00", "demo/video_01"]
    assert len(catalog.load("jhmdb_per_joint")) == 15
    assert {"PCK_0.1", "frames_per_second"} <= set(catalog.load("jhmdb_mlflow_metrics"))
    assert isinstance(catalog.load("jhmdb_overlays"), Figure)
    chart = catalog.load("jhmdb_per_joint_chart")
    assert isinstance(chart, Figure) and len(chart.axes[0].patches) == 15  # one bar per joint


def test_session_writes_metrics_and_logs_to_mlflow(
    demo_jhmdb: Path, tmp_path: Path, kedro_session: KedroSessionRun
) -> None:
    params = {"jhmdb": {"root": str(demo_jhmdb), "image_size": 96}, "runtime": {"device": "cpu", "overlays": 1}}
    proc = kedro_session(["evaluate_jhmdb"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "data" / "08_reporting" / "jhmdb"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"PCK_0.1", "PCK_0.2"} <= set(metrics)
    assert len(pd.read_csv(out / "per_joint.csv")) == 15 and (out / "overlays.png").stat().st_size > 1000
    assert (out / "per_joint.png").stat().st_size > 1000
    assert len(pd.read_parquet(tmp_path / "data" / "07_model_output" / "jhmdb" / "predictions.parquet")) == 180

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sfc").experiment_id])
    assert run.data.metrics["PCK_0.1"] == pytest.approx(metrics["PCK_0.1"])
    assert run.data.params["jhmdb.single.radius"] == "3" and run.data.params["jhmdb.settings"] == "paper"
    assert {"per_video.csv", "per_joint.csv", "overlays.png", "per_joint.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
