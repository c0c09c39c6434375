"""``extract_frames`` as Kedro runs it: the node, the wiring, a two-run incremental catalog, the conf."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from sfc.config import ConfigError, FramesConfig
from sfc.data.frames import INDEX_COLUMNS, REJECT_COLUMNS, FrameIndexError
from sfc.datasets.optional_table import OptionalTableDataset
from sfc.pipeline_registry import register_pipelines
from sfc.pipelines.extract_frames import create_pipeline
from sfc.pipelines.extract_frames.nodes import build_frame_index
from tests.data.test_frames import truncate, write_jpg, write_video

REPO = Path(__file__).resolve().parents[3]
INPUTS = {"params:frames", "frame_index_previous", "frame_rejects_previous"}
OUTPUTS = {"frame_index", "frame_rejects", "frame_summary"}


def frames_params(root: Path, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    params = {
        "root": str(root), "kind": "auto", "extensions": [".jpg", ".jpeg"],
        "video_extensions": [".mp4"], "verify": True, "video_fps": 2, "video_max_seconds": None,
        "jpeg_quality": 90, "output_dir": str(tmp_path / "decoded"), "workers": 1,
    }
    params.update(overrides)
    return params


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """Two image folders (one with a truncated JPEG), a PNG-only folder and a 2 s video."""
    root = tmp_path / "raw"
    for seq in ("a", "b"):
        for i in range(3):
            write_jpg(root / seq / f"{i:05d}.jpg", size=(320, 240), value=i)
    truncate(root / "b" / "00002.jpg", keep=0.3)
    (root / "masks").mkdir()
    (root / "masks" / "00000.png").write_bytes(b"\x89PNG")
    write_video(root / "clip.mp4")
    return root


def test_node_outputs(tree: Path, tmp_path: Path) -> None:
    index, rejects, summary = build_frame_index(frames_params(tree, tmp_path), None, None)
    assert list(index.columns) == list(INDEX_COLUMNS) and list(rejects.columns) == list(REJECT_COLUMNS)
    assert index.groupby("video").size().to_dict() == {"a": 3, "b": 2, "clip": 4}
    assert sorted(Path(p).name for p in rejects["path"]) == ["00002.jpg", "masks"]
    assert summary["kind"] == "mixed" and summary["frames"] == 9 and summary["rejects"] == 2


def test_node_rejects_unknown_parameters(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"frames\.fps: unknown parameter; frames takes: extensions, jpeg_quality"):
        build_frame_index(frames_params(tree, tmp_path, fps=2), None, None)


def test_node_error_path_empty_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameIndexError, match="empty: no frames found"):
        build_frame_index(frames_params(tmp_path / "empty", tmp_path), None, None)


def test_pipeline_structure() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == INPUTS and pipeline.outputs() == OUTPUTS
    assert [n.name for n in pipeline.nodes] == ["build_frame_index"]
    assert "extract_frames" in register_pipelines()


def _catalog(params: dict[str, Any], out: Path) -> DataCatalog:
    """The production catalog's datasets (minus the MLflow wrappers), rooted in ``out``."""
    catalog = DataCatalog()
    catalog["params:frames"] = params
    index, rejects = str(out / "frame_index.parquet"), str(out / "rejects.csv")
    catalog["frame_index"] = ParquetDataset(filepath=index)
    catalog["frame_index_previous"] = OptionalTableDataset(filepath=index)
    catalog["frame_rejects"] = CSVDataset(filepath=rejects, save_args={"index": False})
    catalog["frame_rejects_previous"] = OptionalTableDataset(
        filepath=rejects, load_args={"dtype": {"size": "Int64", "mtime_ns": "Int64"}})
    catalog["frame_summary"] = JSONDataset(filepath=str(out / "summary.json"))
    return catalog


def test_pipeline_runs_twice_incrementally(tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    catalog = _catalog(frames_params(tree, tmp_path), out)
    SequentialRunner().run(create_pipeline(), catalog)
    first = catalog.load("frame_summary")
    assert (first["frames"], first["images_probed"], first["videos_decoded"]) == (9, 6, 1)
    index = pd.read_parquet(out / "frame_index.parquet")
    assert len(index) == 9 and index["mtime_ns"].dtype == "int64"

    SequentialRunner().run(create_pipeline(), _catalog(frames_params(tree, tmp_path), out))
    second = catalog.load("frame_summary")
    # nothing reopened: 5 good images and 1 rejected one come from the previous index / rejects
    assert (second["images_probed"], second["images_reused"], second["rejects_reused"]) == (0, 5, 1)
    assert (second["videos_decoded"], second["videos_reused"]) == (0, 1)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "frame_index.parquet"), index)
    assert "starting without a previous table" in caplog.text  # first run only


def test_conf_matches_the_node() -> None:
    params = yaml.safe_load((REPO / "conf/base/parameters_extract_frames.yml").read_text())
    assert set(params) == {"frames"} and sorted(params["frames"]) == FramesConfig.keys()  # no dead or missing option
    assert params["frames"]["kind"] == "auto" and params["frames"]["root"] == "data/01_raw/frames"
    catalog = yaml.safe_load((REPO / "conf/base/catalog_extract_frames.yml").read_text())
    assert set(catalog) == (INPUTS | OUTPUTS) - {"params:frames"}
    assert catalog["frame_index_previous"]["filepath"] == catalog["frame_index"]["filepath"]
    assert catalog["frame_rejects_previous"]["filepath"] == catalog["frame_rejects"]["dataset"]["filepath"]
