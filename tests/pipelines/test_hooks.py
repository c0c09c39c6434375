"""The project hooks in real Kedro sessions: bad parameters and missing inputs stop a run before any node.

One child process runs a ``KedroSession`` per case (conf copied to ``tmp_path`` as in
``tests/pipelines/conftest.py``) and reports each run's exception; nothing runs, so it is quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sfc.config import ConfigError
from sfc.parameters import GROUPS, validate_parameters
from sfc.pipeline_registry import register_pipelines
from tests.pipelines.conftest import REPO, make_test_conf

_SCRIPT = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

project, conf_source, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bootstrap_project(Path(project))
out = []
for pipelines, params in cases:
    try:
        with KedroSession.create(project_path=project, env="test", conf_source=conf_source,
                                 runtime_params=params) as session:
            session.run(pipeline_names=pipelines)
        out.append(["ok", ""])
    except Exception as exc:
        out.append([type(exc).__name__, str(exc)])
print("RESULTS" + json.dumps(out))
"""


def _run(tmp_path: Path, cases: list[tuple[list[str], dict]]) -> list[tuple[str, str]]:
    conf = make_test_conf(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(REPO), str(conf), json.dumps(cases)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [tuple(r) for r in json.loads(lines[-1][len("RESULTS"):])]


def _nothing_written(tmp_path: Path) -> bool:
    data = tmp_path / "data"
    return not data.exists() or not any(p.is_file() for p in data.rglob("*"))


def test_unknown_key_fails_before_any_node_in_every_pipeline(tmp_path: Path) -> None:
    names = sorted(n for n in register_pipelines() if n != "__default__")
    assert names == ["cache_features", "evaluate_davis", "evaluate_jhmdb", "evaluate_vip", "extract_frames",
                     "fc_pretrain", "fusion_search"]
    cases = [([name], {"propagation": {"topK": 5}}) for name in names]
    cases.append((["fc_pretrain"], {"fc_pretrain": {"step": 10}}))
    cases.append((["evaluate_davis"], {"propagaton": {"topk": 5}}))
    cases.append((["evaluate_davis"], {"davis": {"scale": "half"}}))
    results = _run(tmp_path, cases)
    for (kind, message), (pipelines, _) in zip(results[: len(names)], cases, strict=False):
        assert kind == "ConfigError", (pipelines, kind, message)
        assert "propagation.topK: unknown parameter; propagation takes: context, radius, temperature, topk" in message
    assert "fc_pretrain.step: unknown parameter" in results[-3][1] and "steps" in results[-3][1]
    assert "propagaton: unknown parameter group" in results[-2][1]
    assert "davis.scale: expected float, got 'half'" in results[-1][1]
    assert _nothing_written(tmp_path)
    assert not (tmp_path / "mlruns").exists() or not any((tmp_path / "mlruns").rglob("*.png"))


def test_missing_input_names_the_pipeline_to_run_first(tmp_path: Path) -> None:
    results = _run(tmp_path, [(["fc_pretrain"], {}), (["fusion_search"], {}), (["extract_frames", "fc_pretrain"], {})])
    kind, message = results[0]
    assert kind == "MissingInputError", results[0]
    assert "`frame_index`" in message and "frame_index.parquet" in message
    assert "the extract_frames pipeline writes it" in message
    assert "kedro run --pipelines extract_frames` first" in message
    assert "kedro run --pipelines extract_frames,fc_pretrain" in message
    assert results[1][0] == "MissingInputError" and "cache_features" in results[1][1]
    # Together, extract_frames produces the index: the check passes and extract_frames fails on its own
    # input (no frames folder), not with "run extract_frames first".
    assert results[2][0] != "MissingInputError"


def test_conf_base_is_valid_and_complete() -> None:
    """Every group in conf/base validates, and every group the code knows is defined there."""
    import yaml

    params: dict = {}
    for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    assert set(params) == set(GROUPS)
    configs = validate_parameters(params)
    for name, cfg in configs.items():
        assert cfg.to_dict() == params[name], name  # the YAML round-trips through its config


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as err:
        validate_parameters({"propagation": {"topk": 0}, "extra": {}})
    text = str(err.value)
    assert "extra: unknown parameter group" in text
    assert "propagation.temperature: missing" in text and "propagation.context: missing" in text
    assert "davis: parameter group missing" in text
