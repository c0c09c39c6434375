"""The library under ``sfc`` runs without Kedro or MLflow; only the Kedro-facing modules import them.

``tests/data`` checks the data modules alone; this checks every library module, each imported in a
fresh interpreter so that one module's imports cannot hide another's. Library modules are found by
walking the package, so a new module is covered as soon as it exists.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sfc

SRC = Path(sfc.__file__).resolve().parents[1]
#: Modules that belong to the Kedro project rather than to the library (prefix match).
KEDRO_FACING = ("sfc.pipelines", "sfc.datasets", "sfc.pipeline_registry", "sfc.settings", "sfc.hooks", "sfc.__main__")
#: Named explicitly so that renaming one of them cannot silently drop it from the check.
REQUIRED = [
    "sfc.propagation",
    "sfc.models",
    "sfc.config",
    "sfc.parameters",
    "sfc.atomic",
    "sfc.device",
    "sfc.evaluation.common",
    "sfc.evaluation.davis.metric",
    "sfc.evaluation.davis.reader",
    "sfc.evaluation.davis.evaluate",
    "sfc.evaluation.davis.search",
    "sfc.evaluation.davis.features",
    "sfc.features.cache",
    "sfc.fusion",
    "sfc.training",
    "sfc.viz.figures",
    "sfc.cli",
]
FORBIDDEN = ("kedro", "kedro_datasets", "kedro_mlflow", "kedro_telemetry", "mlflow")

#: Kedro-facing module imported last in the same interpreter, as a control that the check works.
CONTROL = "sfc.datasets.mask_results"

_CHILD = """
import importlib, json, sys
forbidden = tuple(sys.argv[1].split(","))
found = {}
for name in sys.argv[2:]:
    importlib.import_module(name)
    found[name] = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in forbidden})
print(json.dumps(found))
"""


def _library_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(sfc.__path__, "sfc.")]
    return sorted(n for n in names if not n.startswith(KEDRO_FACING))


@pytest.fixture(scope="module")
def imported() -> dict[str, list[str]]:
    """Library modules (REQUIRED first), then CONTROL, imported in order in one fresh interpreter.

    Returns:
        module -> forbidden top-level packages in ``sys.modules`` right after importing it.
    """
    modules = [*REQUIRED, *(m for m in _library_modules() if m not in REQUIRED), CONTROL]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(FORBIDDEN), *modules],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert list(found) == modules  # every module was imported
    return found


def test_library_modules_found() -> None:
    modules = _library_modules()
    assert set(REQUIRED) <= set(modules), sorted(set(REQUIRED) - set(modules))
    assert CONTROL not in modules


def test_library_does_not_import_kedro_or_mlflow(imported: dict[str, list[str]]) -> None:
    library = [m for m in imported if m != CONTROL]
    first_bad = next((m for m in library if imported[m]), None)
    assert first_bad is None, f"{first_bad} pulls in {imported[first_bad]}"


def test_check_detects_kedro_imports(imported: dict[str, list[str]]) -> None:
    """Control: the Kedro-facing results dataset does import Kedro, and the check sees it."""
    assert "kedro" in imported[CONTROL]
