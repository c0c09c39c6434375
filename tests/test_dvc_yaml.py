"""``dvc.yaml`` stays in step with the code: every module and conf file a stage's pipeline uses is a
dependency of the stage, params name real Kedro parameters, and every stage runs a registered pipeline.

The code a stage depends on is computed, not listed by hand: the ``sfc`` modules imported
(transitively, including imports inside functions) by the stage's pipeline package and by the custom
datasets its catalog entries use. A new import that ``dvc.yaml`` does not cover fails here, naming the
file to add, so ``dvc repro`` never reuses outputs of stale code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from sfc.pipeline_registry import register_pipelines

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_file(module: str) -> Path | None:
    base = SRC / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """``sfc`` modules imported anywhere in a file (``from sfc.x import y`` counts ``sfc.x`` and ``sfc.x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sfc"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sfc":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def closure(modules: set[str]) -> set[Path]:
    """Source files of ``modules`` and of every ``sfc`` module they import, transitively (with parent packages)."""
    todo, files = list(modules), set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
            path = _module_file(".".join(parts[:i]))
            if path is not None and path not in files:
                files.add(path)
                todo.extend(_imports(path))
    return files


def _catalog() -> dict:
    catalog: dict = {}
    for path in sorted((REPO / "conf" / "base").glob("catalog*.yml")):
        catalog.update(yaml.safe_load(path.read_text()) or {})
    return catalog


def _dataset_types(entry: dict) -> set[str]:
    types = {entry["type"]} if isinstance(entry.get("type"), str) else set()
    inner = entry.get("dataset")
    return types | (_dataset_types(inner) if isinstance(inner, dict) else set())


def required_files(pipeline_name: str) -> set[str]:
    """Repository paths (relative) whose change may change the stage's outputs."""
    pipeline = register_pipelines()[pipeline_name]
    catalog = _catalog()
    modules = {f"sfc.pipelines.{pipeline_name}"}
    conf = set()
    for dataset in pipeline.datasets():
        if dataset in catalog:
            modules |= {t.rsplit(".", 1)[0] for t in _dataset_types(catalog[dataset]) if t.startswith("sfc.")}
            conf |= {str(p.relative_to(REPO)) for p in (REPO / "conf" / "base").glob("catalog*.yml")
                     if dataset in (yaml.safe_load(p.read_text()) or {})}
    return {str(p.relative_to(REPO)) for p in closure(modules)} | conf


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_code_and_catalog_deps_cover_what_each_pipeline_uses() -> None:
    problems = []
    for name, stage in _stages().items():
        deps = list(stage.get("deps", []))
        missing = sorted(p for p in required_files(name) if not _covered(p, deps))
        if missing:
            problems.append(f"stage {name}: add to deps: {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_closure_follows_imports_inside_functions() -> None:
    files = {str(p.relative_to(REPO)) for p in closure({"sfc.pipelines.evaluate_davis"})}
    assert "src/sfc/models/backbones.py" in files  # imported inside iter_frame_features
    assert "src/sfc/evaluation/davis/metric.py" in files and "src/sfc/pipelines/cache_features/nodes.py" not in files


def test_source_and_conf_deps_exist() -> None:
    for name, stage in _stages().items():
        for dep in stage.get("deps", []):
            if dep.startswith(("src/", "conf/")):
                assert (REPO / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_params_are_kedro_parameters() -> None:
    for name, stage in _stages().items():
        for entry in stage.get("params", []):
            for file, keys in entry.items():
                params = yaml.safe_load((REPO / file).read_text())
                for key in keys:
                    node = params
                    for part in key.split("."):
                        assert isinstance(node, dict) and part in node, f"stage {name}: {file} has no {key}"
                        node = node[part]


def test_each_stage_runs_a_registered_pipeline() -> None:
    pipelines = register_pipelines()
    for name, stage in _stages().items():
        cmd = " ".join(stage["cmd"].split())
        assert cmd.startswith(f"kedro run --pipelines {name}"), cmd
        assert name in pipelines
