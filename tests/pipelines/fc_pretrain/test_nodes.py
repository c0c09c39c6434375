"""Nodes of ``fc_pretrain`` called as plain functions: frame selection, tiny CPU training, MLflow, errors.

One tiny run (``trained``, 3 steps on 6 JPEGs) is made per module inside an active MLflow run whose
tracking store is a SQLite file under a temporary folder; the other tests reuse its ``work_dir``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from sfc.config import ConfigError
from sfc.data.frames import INDEX_COLUMNS
from sfc.pipelines.extract_frames.nodes import build_frame_index
from sfc.pipelines.fc_pretrain import nodes
from sfc.pipelines.fc_pretrain.nodes import select_training_frames, train_fc_network
from sfc.training import CHECKPOINT_NAME, EXPORT_NAME, METRICS_NAME, PREVIOUS_CHECKPOINT_NAME, ResumeError
from tests.pipelines.extract_frames.test_pipeline import frames_params
from tests.pipelines.fc_pretrain import FRAME_SIZES, fc_params, write_frames
from tests.training.helpers import base_params

SUMMARY_KEYS = {
    "final_step", "start_step", "wall_seconds", "images_per_second", "stopped_early", "skipped_images",
    "last_loss", "world_size", "device", "frames",
}
LOGGED = {"loss", "lr", "ema_momentum", "images_per_second", "epoch", "skipped_images"}


def _index(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """A frame index with the given (path, width, height) rows, video = the parent folder."""
    data = [
        {"path": p, "source": "folder", "video": Path(p).parent.name, "frame": i, "width": w, "height": h,
         "size": 1, "mtime_ns": 1, "verified": True}
        for i, (p, w, h) in enumerate(rows)
    ]
    return pd.DataFrame(data, columns=list(INDEX_COLUMNS))


# ------------------------------------------------------------------------------ select_training_frames


@pytest.mark.parametrize("index", [None, pd.DataFrame(columns=list(INDEX_COLUMNS))], ids=["none", "empty"])
def test_select_empty_index_points_to_extract_frames(index: pd.DataFrame | None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"frame index is empty: run `kedro run --pipelines extract_frames"):
        select_training_frames(index, fc_params(tmp_path))


def test_select_drops_small_frames_with_a_warning_in_sorted_order(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    index = _index([
        ("/d/b/00001.jpg", 64, 48), ("/d/a/00000.jpg", 100, 31), ("/d/a/00002.jpg", 32, 32),
        ("/d/b/00000.jpg", 64, 64), ("/d/c/00000.jpg", 20, 200),
    ])
    caplog.set_level(logging.INFO, logger=nodes.__name__)
    params = fc_params(tmp_path, min_size=32)
    paths = select_training_frames(index, params)
    assert paths == ["/d/a/00002.jpg", "/d/b/00000.jpg", "/d/b/00001.jpg"]  # sorted, whatever the index order
    assert paths == select_training_frames(index.sample(frac=1.0, random_state=1), params)
    assert "Skipping 2 of 5 frames smaller than 32 px" in caplog.text
    assert "Training frames: 3 from 2 video(s)" in caplog.text


def test_select_uses_min_size_from_conf_base() -> None:
    index = _index([("/d/a/0.jpg", 64, 64), ("/d/a/1.jpg", 63, 480)])
    params = base_params()
    assert params["min_size"] == 64
    assert select_training_frames(index, params) == ["/d/a/0.jpg"]


def test_select_validates_the_whole_parameter_group() -> None:
    index = _index([("/d/a/0.jpg", 64, 64)])
    with pytest.raises(ConfigError, match=r"fc_pretrain\.arch: missing"):
        select_training_frames(index, {"min_size": 16})  # no defaults in code: every key is needed
    with pytest.raises(ConfigError, match=r"fc_pretrain\.min_sise: unknown parameter; fc_pretrain takes: .*min_size"):
        select_training_frames(index, {**base_params(), "min_sise": 16})


def test_select_every_frame_too_small_is_an_error(tmp_path: Path) -> None:
    index = _index([("/d/a/0.jpg", 20, 20), ("/d/a/1.jpg", 63, 480)])
    with pytest.raises(ValueError, match=r"no frame .* at least 64 px .*fc_pretrain\.min_size"):
        select_training_frames(index, fc_params(tmp_path, min_size=64))


# ------------------------------------------------------------------------------------ train_fc_network


@dataclass(frozen=True)
class Trained:
    frames: list[str]
    params: dict[str, Any]
    work_dir: Path
    export: dict[str, Any]
    summary: dict[str, Any]
    tracking_uri: str
    run_id: str


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite MLflow store in a temporary folder, set as the process's tracking URI for this module."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # restored after set_tracking_uri(previous) below
        mlflow.set_tracking_uri(uri)
        try:
            yield uri
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Trained:
    """3 steps on 6 frames (3 of them smaller than the 32 px crop), logged to an active MLflow run."""
    import mlflow

    tmp = tmp_path_factory.mktemp("fc")
    write_frames(tmp / "frames")
    index, _, _ = build_frame_index(frames_params(tmp / "frames", tmp, kind="folder"), None, None)
    params = fc_params(tmp / "run")
    frames = select_training_frames(index, params)
    with mlflow.start_run() as run:
        export, summary, curve = train_fc_network(frames, params)
    return Trained(frames, params, tmp / "run", export, summary, tracking_uri, run.info.run_id)


def test_train_returns_the_sfc_native_export_without_writing_it(trained: Trained) -> None:
    export = trained.export
    assert export["format"] == "sfc_native" and export["arch"] == "resnet18" and export["step"] == 3
    keys = list(export["model"])
    assert any(k.startswith("online_encoder.") for k in keys)
    assert {k.split(".")[0] for k in keys} >= {"online_encoder", "online_projector", "predictor", "target_encoder"}
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in export["model"].values())
    assert export["config"]["image_size"] == 32 and "work_dir" not in export["config"]  # placement keys stay out
    # the export goes to the fc_checkpoint catalog entry only: the trainer keeps just its resume state
    assert sorted(p.name for p in trained.work_dir.iterdir()) == [CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME, METRICS_NAME]
    assert not (trained.work_dir / EXPORT_NAME).exists()
    saved = torch.load(trained.work_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert saved["step"] == 3 and all(torch.equal(saved["model"][k], v) for k, v in export["model"].items())


def test_train_summary(trained: Trained) -> None:
    summary = trained.summary
    assert set(summary) == SUMMARY_KEYS
    assert (summary["start_step"], summary["final_step"], summary["stopped_early"]) == (0, 3, False)
    assert (summary["world_size"], summary["device"], summary["frames"]) == (1, "cpu", len(FRAME_SIZES))
    assert math.isfinite(summary["last_loss"]) and summary["images_per_second"] > 0
    # 3 steps x 2 = one epoch: every frame was used once, the 3 smaller than the crop included (upsampled
    # by the crop resize, not skipped: they are above min_size)
    assert summary["skipped_images"] == 0
    assert (trained.work_dir / CHECKPOINT_NAME).is_file()


def test_train_logs_to_the_active_mlflow_run(trained: Trained) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=trained.tracking_uri)
    run = client.get_run(trained.run_id)
    assert {f"train/{k}" for k in LOGGED} <= set(run.data.metrics), sorted(run.data.metrics)
    history = client.get_metric_history(trained.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3]  # log_every 1
    assert history[-1].value == pytest.approx(trained.summary["last_loss"])
    assert [m.value for m in client.get_metric_history(trained.run_id, "train/lr")] == [1e-3] * 3


def test_mlflow_logging_is_a_no_op_without_an_active_run(trained: Trained) -> None:
    import mlflow

    assert mlflow.active_run() is None
    nodes._mlflow_log({"loss": 1.0}, step=7)
    assert mlflow.active_run() is None  # no run was started implicitly
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_id for r in runs] == [trained.run_id]


def test_rerun_resumes_without_extra_steps(trained: Trained) -> None:
    export, summary, curve = train_fc_network(trained.frames, trained.params)  # same command again: no active run
    assert summary["start_step"] == summary["final_step"] == 3
    assert summary["last_loss"] is None and summary["skipped_images"] == 0
    assert export["step"] == 3
    assert export["model"].keys() == trained.export["model"].keys()
    assert all(torch.equal(v, trained.export["model"][k]) for k, v in export["model"].items())
    assert len((trained.work_dir / METRICS_NAME).read_text().splitlines()) == 3


def test_unknown_parameter_is_an_error_before_training(tmp_path: Path) -> None:
    params = fc_params(tmp_path / "run", stesp=10)
    with pytest.raises(ConfigError, match=r"fc_pretrain\.stesp: unknown parameter; fc_pretrain takes: .*, steps,"):
        train_fc_network(["/nowhere/0.jpg"], params)
    assert not (tmp_path / "run").exists()


def test_missing_parameter_is_an_error_before_training(tmp_path: Path) -> None:
    params = fc_params(tmp_path / "run")
    del params["seed"]
    with pytest.raises(ConfigError, match=r"fc_pretrain\.seed: missing"):
        train_fc_network(["/nowhere/0.jpg"], params)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 0}, r"fc_pretrain\.image_size: must be >= 1, got 0"),
        ({"steps": "ten"}, r"fc_pretrain\.steps: expected int, got 'ten'"),
        ({"work_dir": ""}, r"fc_pretrain\.work_dir: must not be empty"),
    ],
)
def test_invalid_parameter_value_is_an_error(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_fc_network(["/nowhere/0.jpg"], fc_params(tmp_path / "run", **overrides))


def test_nproc_per_node_2_launches_ddp_and_replays_metrics(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nproc_per_node: 2``: two gloo processes; rank 0's export comes back through the launcher."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "1")
    logged: list[tuple[int, dict[str, float]]] = []
    monkeypatch.setattr(nodes, "_mlflow_log", lambda metrics, step: logged.append((step, metrics)))
    work_dir = tmp_path / "ddp"
    export, summary, curve = train_fc_network(trained.frames, fc_params(work_dir, nproc_per_node=2, steps=2))
    assert (summary["world_size"], summary["final_step"]) == (2, 2) and export["step"] == 2
    assert export["model"].keys() == trained.export["model"].keys()
    assert [step for step, _ in logged] == [1, 2] and set(logged[0][1]) == LOGGED
    assert not (work_dir / EXPORT_NAME).exists()


def test_corrupt_resume_checkpoint_is_named_and_kept(trained: Trained, tmp_path: Path) -> None:
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    ckpt = work_dir / CHECKPOINT_NAME
    garbage = b"\x00not a checkpoint\xff" * 64
    ckpt.write_bytes(garbage)
    pattern = rf"(?s)cannot resume from {re.escape(str(ckpt))}: not a readable checkpoint.*Delete {re.escape(str(ckpt))}"
    with pytest.raises(ResumeError, match=pattern):
        train_fc_network(trained.frames, fc_params(work_dir))
    assert ckpt.read_bytes() == garbage  # left for inspection, not overwritten
    assert sorted(p.name for p in work_dir.iterdir()) == [CHECKPOINT_NAME]  # no export, no metrics
