"""``benchmarks/gpu_check.sh --dry-run``: every step of the GPU check runs at toy size on this machine.

The GPU check is what runs when a GPU machine is lent for a few minutes; this keeps it known-good
without one. On CPU the CUDA twin tests skip, bf16 autocast is off (both training runs are fp32 and
must agree exactly) and the DDP step runs 2 gloo processes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from tests.golden.conftest import golden_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        ["sh", str(SCRIPT), *args, "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    return proc, report


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run's CPU expectations (a GPU runs the real check)")
def test_dry_run_exercises_every_step(tmp_path: Path) -> None:
    golden_dir("propagation")  # the golden steps need it: skip (or fail in CI) without it
    proc, report = _run("--dry-run", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {row["step"]: row for row in report["steps"]}
    assert list(steps) == ["cuda_tests", "fc_train", "engine_golden", "grid_golden", "evaluate_davis", "ddp"]
    assert {row["status"] for row in steps.values()} == {"ok"}, proc.stdout
    assert report["dry_run"] is True and report["machine"]["device"] == "cpu"
    # The table on stdout names every step; the JSON holds the figures.
    for name in steps:
        assert f"| {name} | ok |" in proc.stdout
    cuda = steps["cuda_tests"]["figures"]
    assert cuda["failed"] == 0 and cuda["skipped"] >= 5  # the CUDA twins, skipped without CUDA
    train = steps["fc_train"]["figures"]
    assert train["max_rel_loss_diff"] == 0.0  # CPU: both runs fp32, same seed and data
    assert train["fp32_images_per_s"] > 0 and train["bf16_images_per_s"] > 0
    for name in ("engine_golden", "grid_golden"):
        assert steps[name]["figures"]["argmax_agreement"] >= 0.999, steps[name]
        assert steps[name]["figures"]["s_per_frame"] > 0
    davis = steps["evaluate_davis"]["figures"]
    assert davis["frames"] == 4 and davis["frames_per_s"] > 0
    ddp = steps["ddp"]["figures"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["replicas_identical"] is True


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    proc, report = _run(
        "--dry-run", "--steps", "engine_golden,grid_golden", "--golden", str(tmp_path / "nowhere"), tmp_path=tmp_path
    )
    assert proc.returncode == 1
    rows = report["steps"]
    assert [r["status"] for r in rows] == ["FAIL", "FAIL"]
    assert "nowhere/propagation/manifest.json not found" in rows[0]["problems"][0]
    assert "| engine_golden | FAIL |" in proc.stdout and "pass --golden DIR" in proc.stdout


def test_unknown_step_is_refused(tmp_path: Path) -> None:
    proc, _ = _run("--steps", "engine_golden,warp_drive", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "unknown step(s) ['warp_drive']" in proc.stderr
