"""The notebooks under ``notebooks/`` run top to bottom on real pipeline outputs, and on none.

One ``KedroSession`` (``kedro_session`` fixture: conf, catalog and MLflow under ``tmp_path``) runs
``extract_frames``, ``fc_pretrain``, ``evaluate_davis``, ``cache_features`` and ``fusion_search`` on a
one-sequence demo DAVIS dataset written under ``tmp_path/data/01_raw/davis``, so a real MLflow store
with a real run and real reports exist; both notebooks are then executed by a Jupyter kernel running
this interpreter, pointed at them through their environment variables (``SFC_DATA_ROOT``,
``SFC_TRACKING_URI``, ...). Nothing is written to the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from sfc.data.demo import make_demo_davis
from tests.pipelines.conftest import KedroSessionRun
from tests.pipelines.fc_pretrain import TINY_FC

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPLORE = NOTEBOOKS / "01_explore_results.ipynb"
CORRESPONDENCE = NOTEBOOKS / "02_correspondence_maps.ipynb"


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom (from its folder, as Jupyter does); a failing cell fails the test."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]  # this venv
    NotebookClient(nb, km=km, timeout=240, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def cell_outputs(nb: nbformat.NotebookNode, marker: str) -> tuple[str, int]:
    """Text printed / displayed by the code cell whose source contains ``marker``, and its PNG count."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    text, images = [], 0
    for out in cell.outputs:
        text.append(out.get("text", ""))
        data = out.get("data", {})
        text.append(data.get("text/plain", ""))
        images += "image/png" in data
    return "\n".join(text), images


def all_text(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text."""
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


@pytest.mark.parametrize("path", [EXPLORE, CORRESPONDENCE], ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebooks_on_pipeline_outputs(
    tmp_path: Path, kedro_session: KedroSessionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"  # the catalog of the test env writes every output under tmp_path/data
    davis = make_demo_davis(data / "01_raw" / "davis", n_sequences=1, n_frames=6, size=(64, 96))
    params: dict[str, Any] = {
        "frames": {"root": str(davis), "kind": "davis", "workers": 1},
        "fc_pretrain": {**TINY_FC, "work_dir": str(tmp_path / "fc_run")},
        "davis": {"root": str(davis), "max_frames": 4},
        "backbone": {"arch": "resnet18", "checkpoint": None, "seed": 0},
        "semantic": {"arch": "resnet18", "checkpoint": None, "seed": 1},
        "propagation": {"topk": 4, "radius": 3, "context": 2},
        "runtime": {"device": "cpu", "eval_workers": 1, "overlays": 1},
        "fusion_search": {"lambdas": [0.5, 2.0], "topks": [2, 4], "radii": [3], "temperatures": [0.1], "contexts": [2]},
    }
    pipelines = ["extract_frames", "fc_pretrain", "evaluate_davis", "cache_features", "fusion_search"]
    proc = kedro_session(pipelines, params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    import mlflow  # heavy: imported only by this test

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("sfc").experiment_id])
    (run,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # and 4 fusion-search child runs
    monkeypatch.setenv("SFC_DATA_ROOT", str(data))
    monkeypatch.setenv("SFC_TRACKING_URI", store)

    nb = execute(EXPLORE)
    table, _ = cell_outputs(nb, "search_runs(")
    assert "1 runs of experiment 'sfc'" in table and run.info.run_id[:8] in table and "child runs" in table
    headline, _ = cell_outputs(nb, "METRIC_FILES = {")
    assert "JF_mean" in headline and "skipped: " in headline and "jhmdb/metrics.json" in headline
    for marker in ("get_metric_history(", "fusion_heatmap(summary)", "per_sequence.csv"):
        text, images = cell_outputs(nb, marker)
        assert images == 1 and "skipped" not in text, (marker, text)
    assert "4 configurations x 1 sequences" in cell_outputs(nb, "fusion_heatmap(summary)")[0]

    # The correspondence maps of two demo frames: the trained fc.pth of the run, a semantic network
    # (random init), their fusion.
    monkeypatch.setenv("SFC_SEMANTIC_ARCH", "resnet18")
    nb = execute(CORRESPONDENCE)
    text = all_text(nb)
    assert f"source: {davis / 'JPEGImages' / '480p' / 'demo-00' / '00000.jpg'}" in text
    assert f"FC network: resnet18, weights {data / '06_models' / 'fc' / 'fc.pth'}" in text  # fc_pretrain's
    assert "FC: 256 channels on a 8 x 12 grid" in text and "fused: 512 channels on a 8 x 12 grid" in text
    assert cell_outputs(nb, "correspondence_grid(")[1] == 1
    assert cell_outputs(nb, "correspondence_figure(")[1] == 1
    assert "same object" in cell_outputs(nb, "upsample_map(sim")[0]


def test_explore_notebook_without_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any ``kedro run``: every section says what is missing and which pipeline writes it."""
    monkeypatch.setenv("SFC_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("SFC_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    nb = execute(EXPLORE)
    text = all_text(nb)
    assert "no MLflow store at" in text and "no run with a training curve yet" in text
    assert "results.parquet does not exist yet (written by `kedro run --pipelines cache_features,fusion_search`)" in text
    assert not any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert not (tmp_path / "mlflow.db").exists()  # reading never creates a store
