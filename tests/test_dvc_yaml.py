"""``dvc.yaml`` stays in step with the code: every module and conf file a stage's pipeline uses is a
dependency of the stage, params name real Kedro parameters, and every stage runs a registered pipeline.

The code a stage depends on is computed, not listed by hand: the ``sfc`` modules imported
(transitively, including imports inside functions) by the stage's pipeline package and by the custom
datasets its catalog entries use. A new import that ``dvc.yaml`` does not cover fails here, naming the
file to add, so ``dvc repro`` never reuses outputs of stale code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from sfc.pipeline_registry import register_pipelines

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


DEMO_MODULES = {"sfc.data.demo", "sfc.data.demo_jhmdb", "sfc.data.demo_vip"}  # what `sfc demo-data` runs


def _resolve(node, variables: dict):
    """dvc.yaml with DVC's ``${key}`` templating filled from params.yaml (keys included)."""
    if isinstance(node, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: str(variables[m.group(1)]), node)
    if isinstance(node, list):
        return [_resolve(v, variables) for v in node]
    if isinstance(node, dict):
        return {_resolve(k, variables): _resolve(v, variables) for k, v in node.items()}
    return node


def _stages(profile: dict | None = None) -> dict:
    """Pipeline stages of dvc.yaml (``demo_data`` apart), resolved for ``profile`` (default params.yaml)."""
    variables = profile or yaml.safe_load((REPO / "params.yaml").read_text())
    stages = _resolve(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"], variables)
    stages.pop("demo_data")
    return stages


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


def test_demo_data_stage_covers_the_generators() -> None:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["demo_data"]
    missing = sorted(str(p.relative_to(REPO)) for p in closure(DEMO_MODULES) if not _covered(str(p.relative_to(REPO)), stage["deps"]))
    assert not missing, f"stage demo_data: add to deps: {', '.join(missing)}"


PROFILES = ({"kedro_env": "demo", "data": "data/demo"}, {"kedro_env": "real", "data": "data"})


def test_profiles_match_the_kedro_envs() -> None:
    """params.yaml's data root is the env's ``data`` global (the stages check it again at run time)."""
    current = yaml.safe_load((REPO / "params.yaml").read_text())
    assert current in PROFILES
    for profile in PROFILES:
        env_globals = REPO / "conf" / profile["kedro_env"] / "globals.yml"
        globals_file = env_globals if env_globals.is_file() else REPO / "conf" / "base" / "globals.yml"
        assert yaml.safe_load(globals_file.read_text())["data"] == profile["data"], profile


def _env_parameters(env: str) -> dict:
    """conf/base parameters with the env's merged over them key by key (settings.py: soft merge)."""
    def merge(a: dict, b: dict) -> dict:
        return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in b.items()}}

    params: dict = {}
    for path in [*sorted((REPO / "conf" / "base").glob("parameters*.yml")), REPO / "conf" / env / "parameters.yml"]:
        params = merge(params, yaml.safe_load(path.read_text()) or {})
    return params


def test_parameter_paths_live_under_the_profile_data_root() -> None:
    """The dataset and work paths of each profile's parameters lie under its data root, as its catalog does."""
    for profile in PROFILES:
        params = _env_parameters(profile["kedro_env"])
        paths = {
            "davis.root": params["davis"]["root"], "jhmdb.root": params["jhmdb"]["root"],
            "vip.root": params["vip"]["root"], "frames.root": params["frames"]["root"],
            "frames.output_dir": params["frames"]["output_dir"], "fc_pretrain.work_dir": params["fc_pretrain"]["work_dir"],
            "backbone.checkpoint": params["backbone"]["checkpoint"] or f"{profile['data']}/-",
        }
        for key, value in paths.items():
            assert "${" not in value, f"{key}: DVC cannot edit interpolated values"
            assert Path(value).parts[: len(Path(profile["data"]).parts)] == Path(profile["data"]).parts, (profile, key, value)
        if profile["kedro_env"] == "demo":
            assert all(Path(v).parts[:2] == ("data", "demo") for v in paths.values())


def test_params_are_kedro_parameters() -> None:
    for profile in PROFILES:
        _check_params(_stages(profile))


def _check_params(stages: dict) -> None:
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            for file, keys in entry.items():
                params = yaml.safe_load((REPO / file).read_text())
                for key in keys or []:  # no keys: the whole file (an env's overrides)
                    node = params
                    for part in key.split("."):
                        assert isinstance(node, dict) and part in node, f"stage {name}: {file} has no {key}"
                        node = node[part]


def test_each_stage_runs_a_registered_pipeline() -> None:
    pipelines = register_pipelines()
    for name, stage in _stages().items():
        cmd = " ".join(stage["cmd"].split())
        env = yaml.safe_load((REPO / "params.yaml").read_text())["kedro_env"]
        assert re.match(rf"SFC_DATA_ROOT=\S+ sh scripts/venv kedro run --env {env} --pipelines {name}( |$)", cmd), cmd
        assert name in pipelines
