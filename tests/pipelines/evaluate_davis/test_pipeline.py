"""``evaluate_davis`` as Kedro runs it: on an in-memory catalog, in a real KedroSession, in the registry.

The session smoke test runs ``KedroSession`` in a child process through the ``kedro_session``
fixture of ``tests/pipelines/conftest.py`` (conf copied to ``tmp_path``, catalog and MLflow pointed
into it): nothing is written to the repository's ``data/``, ``mlflow.db``, ``mlruns/`` or
``info.log``, and the session's global state does not leak into other tests.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure
from PIL import Image

import sfc.models.checkpoints
from sfc.datasets.mask_results import RUN_INFO, MaskResultsDataset
from sfc.evaluation.davis.metric import GLOBAL_KEYS
from sfc.evaluation.davis.reader import DavisFormatError, annotation_path
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines.evaluate_davis import create_pipeline
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.evaluate_davis import (
    BACKBONE,
    FUSION,
    PROPAGATION,
    RUNTIME,
    SEMANTIC,
    SEQUENCES,
    davis_params,
)

PARAMS = {
    "params:davis",
    "params:backbone",
    "params:propagation",
    "params:runtime",
    "params:semantic",
    "params:fusion",
}
FREE_OUTPUTS = {
    "davis_metrics", "davis_mlflow_metrics", "davis_per_sequence", "davis_overlays", "davis_gifs", "davis_correspondence"
}


def _catalog(root: Path, results: Path, **davis_overrides: Any) -> DataCatalog:
    catalog = DataCatalog()
    catalog["params:davis"] = davis_params(root, **davis_overrides)
    catalog["params:backbone"] = BACKBONE
    catalog["params:propagation"] = PROPAGATION
    catalog["params:runtime"] = RUNTIME
    catalog["params:semantic"] = SEMANTIC
    catalog["params:fusion"] = FUSION
    catalog["davis_predictions"] = MaskResultsDataset(path=str(results))
    return catalog


def test_pipeline_structure() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == PARAMS
    assert pipeline.outputs() == FREE_OUTPUTS
    assert [n.name for n in pipeline.nodes][:2] == ["select_davis_sequences", "predict_davis"]


def test_pipeline_in_memory_catalog_max_frames(
    tiny_davis: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kedro")
    results = tmp_path / "results"
    catalog = _catalog(tiny_davis, results, max_frames=4)
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    assert "Pipeline execution completed successfully" in caplog.text
    assert set(outputs) == FREE_OUTPUTS

    # max_frames is honoured by prediction (4 PNGs per sequence) and by scoring (frames 1-2 only)
    assert sorted(p.name for p in results.iterdir()) == sorted([*SEQUENCES, RUN_INFO])
    for seq in SEQUENCES:
        assert sorted(p.name for p in (results / seq).iterdir()) == [f"{i:05d}.png" for i in range(4)]
    info = json.loads((results / RUN_INFO).read_text())
    assert info["sequences"] == {seq: 4 for seq in SEQUENCES} and info["frames"] == 8

    metrics = catalog.load("davis_metrics")
    assert list(metrics) == list(GLOBAL_KEYS)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("JF_mean", "J_mean", "F_mean", "J_recall", "F_recall"))
    tracked = catalog.load("davis_mlflow_metrics")
    assert set(tracked) == {*GLOBAL_KEYS, "frames_per_second"}
    table = catalog.load("davis_per_sequence")
    assert (
        isinstance(table, pd.DataFrame)
        and table["Sequence"].str.rsplit("_", n=1).str[0].unique().tolist() == SEQUENCES
    )
    assert isinstance(catalog.load("davis_overlays"), Figure)
    # the GIF videos stay lazy until a dataset writes them (here: an in-memory catalog)
    videos = catalog.load("davis_gifs")
    assert list(videos) == SEQUENCES[: RUNTIME["overlays"]]
    assert all(len(list(video)) == 4 for video in videos.values())  # one blended frame per predicted frame
    fig = catalog.load("davis_correspondence")
    assert isinstance(fig, Figure) and "demo-00" in fig._suptitle.get_text()


def test_pipeline_bad_dataset_fails_before_prediction(
    tiny_davis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(shutil.copytree(tiny_davis, tmp_path / "davis"))
    missing = annotation_path(root, "demo-01", "00000")
    missing.unlink()
    calls: list[Any] = []

    def load_backbone(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise AssertionError("the backbone must not be loaded for a broken dataset")

    monkeypatch.setattr(sfc.models.checkpoints, "load_backbone", load_backbone)  # looked up when called
    with pytest.raises(DavisFormatError) as info:
        SequentialRunner().run(create_pipeline(), _catalog(root, tmp_path / "results"))
    assert str(missing) in str(info.value)
    assert calls == []  # the backbone was never loaded
    assert not (tmp_path / "results").exists()


def test_registry() -> None:
    pipelines = register_pipelines()
    assert {"evaluate_davis", "__default__"} <= set(pipelines)
    assert set(pipelines["__default__"].nodes) == set(pipelines["evaluate_davis"].nodes)
    assert pipelines["evaluate_davis"].outputs() == FREE_OUTPUTS


# ------------------------------------------------------------------------------------ KedroSession


def test_session_run_logs_to_mlflow(tiny_davis: Path, tmp_path: Path, kedro_session: KedroSessionRun) -> None:
    runtime_params = {
        "davis": {"root": str(tiny_davis), "max_frames": 4},
        "propagation": {"topk": 5, "radius": 4, "context": 3},
        "runtime": {"device": "cpu", "eval_workers": 1, "overlays": 2},
    }
    proc = kedro_session(["evaluate_davis"], runtime_params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    metrics = json.loads((tmp_path / "data" / "08_reporting" / "davis" / "metrics.json").read_text())
    assert list(metrics) == list(GLOBAL_KEYS)
    assert json.loads((tmp_path / "data" / "07_model_output" / "davis" / RUN_INFO).read_text())["frames"] == 8

    import mlflow  # heavy: imported only by this test

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sfc")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "mlruns").as_uri())
    # Logged under their own names, as in metrics.json (kedro-mlflow prefixes them with the dataset
    # name unless the catalog entry sets `prefix`).
    assert {"JF_mean", "frames_per_second"} <= set(run.data.metrics), sorted(run.data.metrics)
    assert run.data.metrics["JF_mean"] == pytest.approx(metrics["JF_mean"])
    assert run.data.metrics["frames_per_second"] > 0
    params = run.data.params
    assert params["propagation.topk"] == "5" and params["propagation.temperature"] == "0.05"  # flattened
    assert params["davis.root"] == str(tiny_davis) and params["davis.split"] == "val"  # runtime + base merged
    assert params["backbone.arch"] == "resnet18" and params["runtime.device"] == "cpu"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "per_sequence.csv", "overlays.png", "correspondence.png", "videos"
    }
    assert {a.path for a in client.list_artifacts(run.info.run_id, "videos")} == {f"videos/{s}.gif" for s in SEQUENCES}

    # the report figures, under the redirected ${globals:data} (the GIF folder's `path` included)
    out = tmp_path / "data" / "08_reporting" / "davis"
    assert (out / "correspondence.png").stat().st_size > 1000
    for seq in SEQUENCES:  # runtime.overlays = 2 = both sequences
        with Image.open(out / "videos" / f"{seq}.gif") as gif:
            assert gif.n_frames == 4 and max(gif.size) <= 480
