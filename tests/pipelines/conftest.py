"""Running a real ``KedroSession`` in tests without touching the repository.

:func:`kedro_session` (fixture) runs ``KedroSession`` in a child process whose working directory is
``tmp_path``, on a copy of ``conf/`` with a ``test`` env that points every catalog entry and MLflow into
``tmp_path``: nothing is written to the repository's ``data/``, ``mlflow.db``, ``mlruns/`` or
``info.log``, and the session's global state (project settings, logging handlers, MLflow tracking URI)
does not leak into other tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

_SESSION_SCRIPT = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

project, conf_source, env = sys.argv[1], sys.argv[2], sys.argv[3]
pipelines, runtime_params = json.loads(sys.argv[4]), json.loads(sys.argv[5])
bootstrap_project(Path(project))
with KedroSession.create(
    project_path=project, env=env, conf_source=conf_source, runtime_params=runtime_params
) as session:
    session.run(pipeline_names=pipelines)
"""


def redirect_paths(node: Any, out: Path) -> Any:
    """Copy of a catalog config with every relative ``path``/``filepath`` moved under ``out``."""
    if isinstance(node, dict):
        return {
            k: str(out / v)
            if k in ("path", "filepath") and isinstance(v, str) and not Path(v).is_absolute()
            else redirect_paths(v, out)
            for k, v in node.items()
        }
    return node


def make_test_conf(tmp_path: Path) -> Path:
    """``tmp_path/conf``: the project's base conf plus a ``test`` env writing only under tmp_path."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf" / "base", conf / "base")
    shutil.copy(REPO / "conf" / "logging.yml", conf / "logging.yml")
    (conf / "test").mkdir()
    catalog: dict[str, Any] = {}
    for path in sorted((conf / "base").glob("catalog*.yml")):  # catalog.yml, catalog_<pipeline>.yml
        catalog.update(yaml.safe_load(path.read_text()) or {})
    (conf / "test" / "catalog.yml").write_text(yaml.safe_dump(redirect_paths(catalog, tmp_path)))
    mlflow_conf = yaml.safe_load((conf / "base" / "mlflow.yml").read_text())
    mlflow_conf["server"]["mlflow_tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = mlflow_conf["tracking"]["experiment"]
    experiment["create_experiment_kwargs"]["artifact_location"] = (tmp_path / "mlruns").as_uri()
    (conf / "test" / "mlflow.yml").write_text(yaml.safe_dump(mlflow_conf))
    return conf


KedroSessionRun = Callable[..., subprocess.CompletedProcess]


@pytest.fixture()
def kedro_session(tmp_path: Path) -> KedroSessionRun:
    """``run(pipeline_names, runtime_params, env="test")``: one ``KedroSession.run`` in a child process.

    Another ``env`` (a folder of ``tmp_path/conf``) replaces the ``test`` env: copy ``conf/test``'s
    catalog and mlflow files into it to keep outputs under tmp_path.

    The MLflow store is ``sqlite:///<tmp_path>/mlflow.db`` with artifacts under ``tmp_path/mlruns``;
    relative catalog paths land under ``tmp_path`` (e.g. ``tmp_path/data/06_models/fc/fc.pth``).
    """
    conf = make_test_conf(tmp_path)
    os_env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    os_env.pop("MLFLOW_TRACKING_URI", None)
    os_env.pop("KEDRO_LOGGING_CONFIG", None)  # conf/logging.yml is found from the cwd: tmp_path

    def run(
        pipeline_names: list[str], runtime_params: dict[str, Any], env: str = "test"
    ) -> subprocess.CompletedProcess:
        args = [str(REPO), str(conf), env, json.dumps(pipeline_names), json.dumps(runtime_params)]
        return subprocess.run(
            [sys.executable, "-c", _SESSION_SCRIPT, *args],
            cwd=tmp_path,
            env=os_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run
