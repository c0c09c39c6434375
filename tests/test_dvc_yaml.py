"""``dvc.yaml`` stays in step with the code: source deps exist, params name real Kedro parameters,
and every stage runs a registered pipeline."""

from __future__ import annotations

from pathlib import Path

import yaml

from sfc.pipeline_registry import register_pipelines

REPO = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


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
