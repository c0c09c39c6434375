"""MLflow runs as a results browser needs them: telling names, provenance tags, the model-training view,
and an honest status for a run stopped by Ctrl+C (real ``KedroSession`` runs in child processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sfc import provenance
from tests.pipelines.conftest import REPO, KedroSessionRun, make_test_conf

RUNTIME_PARAMS = {
    "propagation": {"topk": 5, "radius": 4, "context": 3},
    "runtime": {"device": "cpu", "eval_workers": 1, "overlays": 1},
}


def _client(tmp_path: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_run_name_tags_and_experiment_kind(tiny_davis: Path, tmp_path: Path, kedro_session: KedroSessionRun) -> None:
    params = {**RUNTIME_PARAMS, "davis": {"root": str(tiny_davis), "max_frames": 3}}
    proc = kedro_session(["evaluate_davis"], params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = _client(tmp_path)
    experiment = client.get_experiment_by_name("sfc")
    # MLflow 3.17 opens the experiment in its GenAI view without this tag
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "evaluate_davis | resnet18:random-init | k5 r'4 t0.05 m3 | test"
    tags = run.data.tags
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert tags["git.commit"] == commit == tags["mlflow.source.git.commit"] and tags["git.dirty"] in ("true", "false")
    assert tags["data.davis"] == f"listing-sha256 {provenance.listing_fingerprint(tiny_davis)}"
    assert tags["checkpoint.backbone"] == "resnet18 random-init (seed 0)" and "checkpoint.semantic" not in tags
    assert tags["version.torch"].startswith("2.") and tags["version.kedro"] == "1.7.0"
    assert tags["device.cpu"] and tags["device.gpu"]


_INTERRUPTED_SCRIPT = """
import sys
from pathlib import Path
import sfc.pipelines.shared as shared

def interrupted(*args, **kwargs):
    raise KeyboardInterrupt  # what Ctrl+C raises in the main thread

shared.select_davis_sequences = interrupted  # before the pipeline module imports it
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path(sys.argv[1]))
with KedroSession.create(project_path=sys.argv[1], env="test", conf_source=sys.argv[2],
                         runtime_params={"davis": {"root": sys.argv[3]}}) as session:
    session.run(pipeline_names=["evaluate_davis"])
"""


def test_interrupted_run_is_killed_not_finished(tiny_davis: Path, tmp_path: Path) -> None:
    conf = make_test_conf(tmp_path)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_SCRIPT, str(REPO), str(conf), str(tiny_davis)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr, proc.stderr[-3000:]
    client = _client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("sfc").experiment_id])
    assert run.info.status == "KILLED"  # MLflow's own exit handler would have said FINISHED


def test_run_names_tell_runs_apart() -> None:
    base = {
        "backbone": {"arch": "resnet18", "checkpoint": "data/06_models/fc/fc.pth", "seed": 0},
        "semantic": {"arch": "resnet50", "checkpoint": None, "seed": 0},
        "fusion": {"lambda": 1.75},
        "propagation": {"topk": 10, "radius": 12, "temperature": 0.05, "context": 20},
        "jhmdb": {"settings": "paper"},
        "fc_pretrain": {"steps": 50, "batch_size": 8, "image_size": 64},
    }
    assert provenance.run_name(["evaluate_davis"], base, "demo") == (
        "evaluate_davis | resnet18:fc.pth + resnet50:random-init | λ1.75 k10 r'12 t0.05 m20 | demo"
    )
    other = json.loads(json.dumps(base))
    other["propagation"]["topk"] = 15
    assert provenance.run_name(["evaluate_davis"], other, "demo") != provenance.run_name(["evaluate_davis"], base, "demo")
    assert provenance.run_name(["evaluate_jhmdb"], base, None) == (
        "evaluate_jhmdb | resnet18:fc.pth + resnet50:random-init | paper settings"
    )
    assert provenance.run_name(["fc_pretrain"], base, "local") == "fc_pretrain | 50 steps x 8 @ 64px"
    grid = {**base, "fusion_search": {"lambdas": [0.5, 1.75], "topks": [5, 10], "radii": None,
                                      "temperatures": None, "contexts": None}}
    assert provenance.run_name(["fusion_search"], grid, "demo") == (
        "fusion_search | resnet18:fc.pth + resnet50:random-init | grid λ[0.5,1.75] k[5,10] r'12 t0.05 m20 | demo"
    )


def test_data_fingerprint_prefers_the_dvc_hash(tmp_path: Path) -> None:
    data = tmp_path / "data" / "01_raw" / "davis"
    data.mkdir(parents=True)
    (data / "a.txt").write_text("x")
    assert provenance.data_fingerprint("data/01_raw/davis", tmp_path).startswith("listing-sha256 ")
    (tmp_path / "data" / "01_raw" / "davis.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: davis\n"
    )
    assert provenance.data_fingerprint("data/01_raw/davis", tmp_path) == "dvc-md5 0123456789abcdef0123456789abcdef.dir"
    assert provenance.data_fingerprint("data/01_raw/davis/a.txt", tmp_path).startswith(
        "dvc-md5 0123456789abcdef0123456789abcdef.dir (inside data/01_raw/davis)"
    )
    assert provenance.data_fingerprint("data/01_raw/none", tmp_path) == "missing"
    assert provenance.checkpoint_fingerprint(None, 3, tmp_path) == "random-init (seed 3)"
    (tmp_path / "w.pth").write_bytes(b"abc")
    assert provenance.checkpoint_fingerprint("w.pth", 0, tmp_path) == (
        "sha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_git_state_outside_a_checkout(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == {}
