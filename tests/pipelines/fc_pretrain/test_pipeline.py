"""``fc_pretrain`` as Kedro runs it: wiring, conf, the checkpoint dataset, and the chain
``extract_frames`` -> ``fc_pretrain`` -> ``evaluate_davis`` in miniature on temporary catalogs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, DatasetError
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from sfc.data.frames import INDEX_COLUMNS, FrameIndexError
from sfc.datasets.mask_results import MaskResultsDataset
from sfc.datasets.torch_checkpoint import TorchCheckpointDataset
from sfc.evaluation.davis.metric import GLOBAL_KEYS
from sfc.models.checkpoints import load_backbone
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines.fc_pretrain import create_pipeline
from sfc.training import FCTrainConfig
from tests.data.test_frames import write_jpg
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.evaluate_davis import PROPAGATION, RUNTIME, davis_params
from tests.pipelines.extract_frames.test_pipeline import _catalog as frames_catalog
from tests.pipelines.extract_frames.test_pipeline import frames_params
from tests.pipelines.fc_pretrain import TINY_FC, fc_params, write_frames

REPO = Path(__file__).resolve().parents[3]
INPUTS = {"frame_index", "params:fc_pretrain"}
OUTPUTS = {"fc_checkpoint", "fc_train_summary", "fc_train_curve"}


def test_pipeline_structure() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == INPUTS and pipeline.outputs() == OUTPUTS
    assert [n.name for n in pipeline.nodes] == ["select_training_frames", "train_fc"]
    registered = register_pipelines()
    assert set(registered["fc_pretrain"].nodes) == set(pipeline.nodes)
    # fc_pretrain reads what extract_frames writes
    assert "frame_index" in registered["extract_frames"].outputs()


def test_conf_matches_the_trainer() -> None:
    params = yaml.safe_load((REPO / "conf/base/parameters_fc_pretrain.yml").read_text())["fc_pretrain"]
    assert set(params) == set(FCTrainConfig.keys())  # the whole group is the trainer's config: no dead option
    config = FCTrainConfig.from_dict(params)
    paper = {"arch": "resnet18", "steps": 60_000, "batch_size": 96, "image_size": 256, "lr": 1e-3,
             "weight_decay": 0.0, "momentum_base": 0.99, "radius": 0.5, "scale_min": 0.0, "scale_max": 1.0,
             "flip": False, "projection_hidden_dim": 2048, "projection_dim": 256, "prediction_hidden_dim": 2048}
    assert {k: getattr(config, k) for k in paper} == paper
    demo = yaml.safe_load((REPO / "conf/demo/parameters.yml").read_text())
    assert set(demo["fc_pretrain"]) <= set(params)  # soft-merged overrides of existing keys only
    catalog = yaml.safe_load((REPO / "conf/base/catalog_fc_pretrain.yml").read_text())
    assert set(catalog) == OUTPUTS
    # the demo evaluates the network it trained
    demo_globals = yaml.safe_load((REPO / "conf/demo/globals.yml").read_text())
    fc_path = catalog["fc_checkpoint"]["dataset"]["filepath"]  # logged to MLflow as model/fc.pth too
    assert demo["backbone"]["checkpoint"] == fc_path.replace("${globals:data}", demo_globals["data"])


# ------------------------------------------------------------------------------ TorchCheckpointDataset


def _tmp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "fc.pth")


def test_checkpoint_dataset_round_trip_and_atomic_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "models" / "fc.pth"  # parent created on save
    dataset = TorchCheckpointDataset(filepath=str(path))
    assert not dataset.exists()
    first = {"format": "sfc_native", "step": 1, "config": {"max_minutes": None}, "model": {"w": torch.ones(2, 3)}}
    dataset.save(first)
    assert dataset.exists() and _tmp_files(path.parent) == []
    loaded = dataset.load()
    assert loaded.keys() == first.keys() and loaded["config"] == {"max_minutes": None}
    assert torch.equal(loaded["model"]["w"], first["model"]["w"])
    dataset.save({**first, "step": 2, "model": {"w": torch.zeros(1)}})
    assert dataset.load()["step"] == 2 and _tmp_files(path.parent) == []
    assert dataset._describe() == {"filepath": str(path)}
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not tempfile's 0600: readable as usual


def test_checkpoint_dataset_writes_0644_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "fc.pth"
    previous = os.umask(0o022)
    try:
        TorchCheckpointDataset(filepath=str(path)).save({"model": {"w": torch.ones(1)}, "step": 1})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.pth"]


@pytest.mark.parametrize("data", [torch.ones(2), {"state_dict": {}}, [("model", {})]], ids=["tensor", "no-model", "list"])
def test_checkpoint_dataset_refuses_non_checkpoints(tmp_path: Path, data: Any) -> None:
    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "fc.pth"))
    with pytest.raises(DatasetError, match="expected a dict with a 'model' state dict"):
        dataset.save(data)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_dataset_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fc.pth"
    dataset = TorchCheckpointDataset(filepath=str(path))
    dataset.save({"model": {"w": torch.ones(1)}, "step": 1})
    before = path.read_bytes()

    def failing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        with open(f, "wb") as fh:  # a crash halfway through the write (to the temporary file)
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save({"model": {"w": torch.zeros(1)}, "step": 2})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["fc.pth"]


def test_checkpoint_dataset_load_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"fc\.pth: checkpoint not found"):
        TorchCheckpointDataset(filepath=str(tmp_path / "fc.pth")).load()


# ------------------------------------------------------- extract_frames -> fc_pretrain -> evaluate_davis


def _train_catalog(frames: dict[str, Any], fc: dict[str, Any], out: Path) -> DataCatalog:
    """The production catalogs of extract_frames and fc_pretrain (minus MLflow wrappers), under ``out``."""
    catalog = frames_catalog(frames, out)
    catalog["params:fc_pretrain"] = fc
    catalog["fc_checkpoint"] = TorchCheckpointDataset(filepath=str(out / "models" / "fc.pth"))
    catalog["fc_train_summary"] = JSONDataset(filepath=str(out / "fc_summary.json"))
    catalog["fc_train_curve"] = CSVDataset(filepath=str(out / "train_curve.csv"), save_args={"index": False})
    return catalog


def test_extract_train_and_evaluate(
    tmp_path: Path, tiny_davis: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    raw = tmp_path / "raw"
    write_frames(raw, video="seq_a")
    write_jpg(raw / "seq_b" / "00000.jpg", size=(12, 10))  # below min_size 16: indexed, not trained on
    (raw / "seq_c").mkdir()
    (raw / "seq_c" / "notes.txt").write_text("no frames here")  # a frame folder without images
    out = tmp_path / "out"
    catalog = _train_catalog(frames_params(raw, tmp_path), fc_params(tmp_path / "run"), out)
    pipelines = register_pipelines()
    SequentialRunner().run(pipelines["extract_frames"] + pipelines["fc_pretrain"], catalog)

    index = pd.read_parquet(out / "frame_index.parquet")
    assert len(index) == 7 and set(index["video"]) == {"seq_a", "seq_b"}
    rejects = pd.read_csv(out / "rejects.csv")
    (reason,) = rejects.loc[rejects["video"] == "seq_c", "reason"]
    assert reason.startswith("no image files (*.jpg, *.jpeg) in this folder; found 1 other file(s), e.g. notes.txt")
    assert "Skipping 1 of 7 frames smaller than 16 px" in caplog.text
    summary = catalog.load("fc_train_summary")
    assert (summary["frames"], summary["final_step"], summary["skipped_images"]) == (6, 3, 0)
    curve = pd.read_csv(out / "train_curve.csv")  # the DVC plot: one row per logged step
    assert curve["step"].is_monotonic_increasing and curve["step"].iloc[-1] == 3
    assert {"loss", "lr", "ema_momentum", "images_per_second"} <= set(curve.columns) and curve["loss"].notna().all()

    # the checkpoint the catalog wrote is what evaluate_davis loads (layout sfc_native, online encoder)
    checkpoint = out / "models" / "fc.pth"
    export = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert export["format"] == "sfc_native" and export["step"] == 3
    backbone, info = load_backbone("resnet18", checkpoint)
    assert (info.layout, info.arch, info.path) == ("sfc_native", "resnet18", str(checkpoint))
    assert info.n_loaded_tensors > 0 and info.metadata.get("step") == 3
    state = backbone.state_dict()
    assert all(torch.equal(state[k], export["model"][f"online_encoder.{k}"]) for k in ("conv1.weight", "layer3.0.conv1.weight"))

    # evaluate_davis as registered, its parameters from conf/base with the tiny overrides (a parameter
    # added to evaluate_davis later gets its base value)
    evaluate = pipelines["evaluate_davis"]
    base: dict[str, Any] = {}  # every parameters*.yml of conf/base, merged as Kedro does
    for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
        base.update(yaml.safe_load(path.read_text()) or {})
    overrides = {
        "davis": davis_params(tiny_davis, max_frames=3),
        "backbone": {"arch": "resnet18", "checkpoint": str(checkpoint), "seed": 0},
        "propagation": PROPAGATION,
        "runtime": RUNTIME,
    }
    davis = DataCatalog()
    for name in sorted(evaluate.inputs()):
        key = name.removeprefix("params:")
        davis[name] = {**base[key], **overrides.get(key, {})}
    davis["davis_predictions"] = MaskResultsDataset(path=str(tmp_path / "results"))
    loaded: list[tuple[Any, str, str | None]] = []

    def spy(arch: str, path: Any, **kwargs: Any) -> Any:
        model, info = load_backbone(arch, path, **kwargs)
        loaded.append((path, info.layout, info.sha256))
        return model, info

    monkeypatch.setattr("sfc.models.checkpoints.load_backbone", spy)  # the evaluation imports it when called
    SequentialRunner().run(evaluate, davis)
    # predictions, then the correspondence-map figure: every load is this checkpoint
    assert set(loaded) == {(str(checkpoint), "sfc_native", info.sha256)} and len(loaded) == 2
    metrics = davis.load("davis_metrics")
    assert list(metrics) == list(GLOBAL_KEYS)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("JF_mean", "J_mean", "F_mean"))


# -------------------------------------------------------------------------------------- bad inputs


def test_extract_frames_over_a_folder_without_images_names_the_root(tmp_path: Path) -> None:
    root = tmp_path / "no_images"
    (root / "seq").mkdir(parents=True)
    (root / "seq" / "readme.txt").write_text("nothing")
    catalog = _train_catalog(frames_params(root, tmp_path), fc_params(tmp_path / "run"), tmp_path / "out")
    pipelines = register_pipelines()
    with pytest.raises(FrameIndexError, match=rf"{re.escape(str(root))}: no frames found .*1 file\(s\)/folder\(s\) rejected"):
        SequentialRunner().run(pipelines["extract_frames"] + pipelines["fc_pretrain"], catalog)
    assert not (tmp_path / "out" / "models").exists() and not (tmp_path / "run").exists()


def test_fc_pretrain_on_an_empty_index_fails_before_training(tmp_path: Path) -> None:
    catalog = DataCatalog()
    catalog["frame_index"] = pd.DataFrame(columns=list(INDEX_COLUMNS))
    catalog["params:fc_pretrain"] = fc_params(tmp_path / "run")
    catalog["fc_checkpoint"] = TorchCheckpointDataset(filepath=str(tmp_path / "fc.pth"))
    with pytest.raises(ValueError, match="frame index is empty: run .*extract_frames"):
        SequentialRunner().run(create_pipeline(), catalog)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ KedroSession


def test_session_run_trains_and_logs_to_mlflow(tmp_path: Path, kedro_session: KedroSessionRun) -> None:
    """``kedro run --pipelines extract_frames,fc_pretrain`` with the project conf (catalog, runtime
    parameters merged into conf/base, kedro-mlflow): fc.pth, the summary and MLflow's metrics."""
    write_frames(tmp_path / "raw")
    work_dir = tmp_path / "run"
    runtime_params = {  # real keys only, merged into conf/base's groups
        "frames": {"root": str(tmp_path / "raw"), "kind": "folder", "workers": 1},
        "fc_pretrain": {**TINY_FC, "work_dir": str(work_dir)},
    }
    proc = kedro_session(["extract_frames", "fc_pretrain"], runtime_params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    checkpoint = tmp_path / "data" / "06_models" / "fc" / "fc.pth"  # the catalog entry, under tmp_path
    _, info = load_backbone("resnet18", checkpoint)
    assert info.layout == "sfc_native" and info.metadata["step"] == 3
    summary = json.loads((tmp_path / "data" / "08_reporting" / "fc" / "train_summary.json").read_text())
    assert (summary["start_step"], summary["final_step"], summary["frames"]) == (0, 3, 6)
    # fc.pth is written once, by the catalog; the work_dir keeps the trainer's resume state only
    assert sorted(p.name for p in work_dir.iterdir()) == ["last.ckpt", "last.prev.ckpt", "metrics.jsonl"]

    import mlflow  # heavy: imported only by this test

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sfc")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3]
    params = run.data.params
    assert params["fc_pretrain.steps"] == "3" and params["fc_pretrain.lr"] == "0.001"  # runtime + base merged
    assert params["fc_pretrain.work_dir"] == str(work_dir)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"train_summary.json", "rejects.csv"}

