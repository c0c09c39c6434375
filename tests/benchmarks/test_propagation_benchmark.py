"""``benchmarks/propagation.py`` at toy size: every table it can print comes out (a broken option
would otherwise only show when someone measures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_toy_run_prints_every_table() -> None:
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "propagation.py"), "--frames", "4", "--channels", "16",
        "--height", "12", "--width", "18", "--context", "2", "--radius", "3", "--topk", "3",
        "--reference-frames", "2", "--blas", "--lengths", "4,6",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in ("### Speed and memory", "### Engine memory vs video length", "### Raw GEMM throughput",
                    "### Where the engine's time goes", "### Distance to this machine's floor"):
        assert heading in out, out
    engine = next(line for line in out.splitlines() if line.startswith("| engine"))
    assert "100.000%" in engine  # argmax agreement with the full-affinity reference on the timed frames
