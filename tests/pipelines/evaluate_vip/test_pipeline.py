"""``evaluate_vip`` as Kedro runs it: structure, an in-memory catalog, and a real KedroSession with MLflow.

Runs on the generated VIP-layout demo videos (``sfc.data.demo_vip``) with a random-init ResNet-18.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset
from matplotlib.figure import Figure
from PIL import Image

from sfc.data.demo_vip import make_demo_vip
from sfc.datasets.mask_results import MaskResultsDataset
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines.evaluate_vip import create_pipeline
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.evaluate_davis import BACKBONE, FUSION, PROPAGATION, RUNTIME, SEMANTIC

OUTPUTS = {"vip_metrics", "vip_mlflow_metrics", "vip_overlays", "vip_per_class_chart", "vip_gifs"}
# vip_per_class is drawn by render_vip_per_class, so it is no longer a free output
SINGLE = {"topk": 10, "temperature": 0.07, "radius": 15, "context": 8}
FUSED = {"lambda": 1.0, "topk": 10, "temperature": 0.07, "radius": 15, "context": 8}


@pytest.fixture(scope="module")
def demo_vip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_vip(tmp_path_factory.mktemp("vip"), n_frames=5)


def vip_params(root: Path, **overrides: Any) -> dict[str, Any]:
    return {"root": str(root), "split": None, "image_size": 96, "max_frames": None, "settings": "paper",
            "single": SINGLE, "fused": FUSED, **overrides}


def test_pipeline_structure_and_registry() -> None:
    pipeline = create_pipeline()
    assert pipeline.outputs() == OUTPUTS
    assert [n.name for n in pipeline.nodes][:2] == ["select_vip_videos", "predict_vip"]
    assert "evaluate_vip" in register_pipelines()


def test_in_memory_catalog(demo_vip: Path, tmp_path: Path) -> None:
    catalog = DataCatalog()
    for name, value in {
        "vip": vip_params(demo_vip, max_frames=4), "backbone": BACKBONE, "semantic": SEMANTIC, "fusion": FUSION,
        "propagation": PROPAGATION, "runtime": {**RUNTIME, "overlays": 1},
    }.items():
        catalog[f"params:{name}"] = value
    catalog["vip_predictions"] = MaskResultsDataset(path=str(tmp_path / "results"))
    catalog["vip_per_class"] = CSVDataset(filepath=str(tmp_path / "per_class.csv"), save_args={"index": False})
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    assert set(outputs) == OUTPUTS
    metrics = catalog.load("vip_metrics")
    assert set(metrics) == {"mIoU", "overall_accuracy", "mean_accuracy", "fwavacc"} and 0 < metrics["mIoU"] <= 100
    assert sorted(p.name for p in (tmp_path / "results" / "demo-00").iterdir()) == [
        f"{i:012d}.png" for i in range(1, 5)  # max_frames: 4 frames, the first one included
    ]
    per_class = catalog.load("vip_per_class")
    assert len(per_class) == 20 and per_class["name"].iloc[0] == "background"
    assert isinstance(catalog.load("vip_overlays"), Figure)
    chart = catalog.load("vip_per_class_chart")
    assert isinstance(chart, Figure) and len(chart.axes[0].patches) == 20  # one bar per class
    videos = catalog.load("vip_gifs")  # lazy until written
    assert list(videos) == ["demo-00"] and len(list(videos["demo-00"])) == 4


def test_session_writes_metrics_and_logs_to_mlflow(
    demo_vip: Path, tmp_path: Path, kedro_session: KedroSessionRun
) -> None:
    params = {"vip": {"root": str(demo_vip), "image_size": 96}, "runtime": {"device": "cpu", "overlays": 1}}
    proc = kedro_session(["evaluate_vip"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "data" / "08_reporting" / "vip"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["mIoU"] <= 100 and len(pd.read_csv(out / "per_class.csv")) == 20
    assert (out / "per_class.png").stat().st_size > 1000
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["demo-00.gif"]  # runtime.overlays = 1
    with Image.open(out / "videos" / "demo-00.gif") as gif:
        assert gif.n_frames == 5

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sfc").experiment_id])
    assert run.data.metrics["mIoU"] == pytest.approx(metrics["mIoU"])
    assert run.data.params["vip.image_size"] == "96" and run.data.params["vip.single.radius"] == "15"
    assert {"per_class.csv", "overlays.png", "per_class.png", "videos"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    assert [a.path for a in client.list_artifacts(run.info.run_id, "videos")] == ["videos/demo-00.gif"]
