"""The ``kedro`` command line on this project: ``kedro viz build`` and ``kedro run --pipeline(s)``.

Each command runs as a child process (``.venv/bin/kedro``, next to the interpreter running the
tests) in a copy of the project under a temporary folder (``pyproject.toml``, ``src/``, ``conf/``
without ``conf/local``), because ``kedro viz build`` always writes ``build/`` and ``.viz/`` into the
project, and ``kedro run`` opens ``mlflow.db`` in the working directory. The repository is never
written to. Measured on a shared 2-core CPU (2026-12-01): ``kedro viz build`` 13 s alone, 35 s with
other jobs running; each ``kedro run`` 20-35 s, most of it importing Kedro, MLflow and PyTorch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.framework.startup import bootstrap_project

REPO = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")


def copy_project(root: Path) -> Path:
    """``root``: a copy of the project (``pyproject.toml``, ``src/``, ``conf/`` without ``conf/local``)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project a ``kedro`` command may write into."""
    return copy_project(tmp_path_factory.mktemp("project"))


def start_kedro(project: Path, *args: str) -> subprocess.Popen:
    """Start ``kedro <args>`` in ``project``, offline, with wide (unwrapped) console output."""
    env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "COLUMNS": "400",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [str(KEDRO), *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """(exit status, stdout and stderr) of a started command."""
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def registered() -> dict[str, Any]:
    bootstrap_project(REPO)
    from sfc.pipeline_registry import register_pipelines

    return register_pipelines()


def _catalog_layers(conf: Path) -> dict[str, str]:
    """``{dataset: kedro-viz layer}`` of every catalog entry under ``conf/base`` that declares one."""
    layers = {}
    for path in sorted((conf / "base").glob("catalog*.yml")):
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            layer = ((entry or {}).get("metadata") or {}).get("kedro-viz", {}).get("layer")
            if layer:
                layers[name] = layer
    return layers


def test_viz_build_shows_every_pipeline_and_the_catalog_layers(project: Path, registered: dict[str, Any]) -> None:
    status, output = finish(start_kedro(project, "viz", "build"))
    assert status == 0, output[-3000:]
    build = project / "build"
    assert (build / "index.html").is_file()
    main = json.loads((build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(registered)

    seen: dict[str, str | None] = {}  # dataset -> layer, over every pipeline's graph
    for name, pipeline in registered.items():
        graph = json.loads((build / "api" / "pipelines" / name).read_text())
        tasks = {n["name"] for n in graph["nodes"] if n["type"] == "task"}
        assert tasks == {node.name for node in pipeline.nodes}, name
        datasets = {n["name"] for n in graph["nodes"] if n["type"] in ("data", "parameters")}
        assert datasets == set(pipeline.datasets()), name
        for n in graph["nodes"]:
            if n["type"] == "data":
                seen[n["name"]] = n.get("layer")

    layers = _catalog_layers(project / "conf")
    assert {"davis_predictions", "feature_cache", "frame_index", "fc_checkpoint"} <= set(layers)
    shown = {name: layer for name, layer in layers.items() if name in seen}
    assert shown == {name: seen[name] for name in shown}, "layers in the site differ from the catalog's"
    assert set(shown.values()) == set(main["layers"])


def test_pipeline_and_pipelines_select_the_same_pipeline(tmp_path: Path) -> None:
    """``--pipeline`` (deprecated in Kedro 1.7, warns) and ``--pipelines`` both run the named pipeline.

    ``fc_pretrain`` in a project without a frame index stops in the project hook before any node,
    with a message only that pipeline produces; both spellings must reach it. The two commands run
    at the same time, each in its own copy (each opens its own ``mlflow.db``).
    """
    flags = ("--pipeline", "--pipelines")
    projects = {flag: copy_project(tmp_path / flag.strip("-")) for flag in flags}
    started = {flag: start_kedro(projects[flag], "run", flag, "fc_pretrain") for flag in flags}
    deprecation = "KedroDeprecationWarning: Option '--pipeline' is deprecated"
    for flag in flags:
        status, output = finish(started[flag])
        output = _one_line(output)
        data = projects[flag] / "data"
        message = (
            "MissingInputError: cannot run fc_pretrain: `frame_index` "
            f"({data / '02_intermediate' / 'frame_index.parquet'}) does not exist yet: the "
            "extract_frames pipeline writes it. Run `kedro run --pipelines extract_frames` first"
        )
        assert status != 0, output[-3000:]
        assert message in output, output[-3000:]
        assert (deprecation in output) == (flag == "--pipeline"), output[-3000:]
        assert not data.exists() or not any(p.is_file() for p in data.rglob("*")), "a node ran"
