"""``sfc propagate`` on the command line: outputs and messages, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sfc.cli import cli, main
from sfc.evaluation.davis.reader import write_mask
from tests.propagate.conftest import CLIP_FRAMES


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["propagate", "--device", "cpu", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_propagate_then_resume(clip_mp4: Path, clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["--video", str(clip_mp4), "--mask", str(clip_dir / "first.png"), "--out", str(out), "--context", "3"]
    code, stdout, stderr = _run(capsys, *args, "--max-frames", "5")
    assert code == 0, stderr
    assert "through 5 frame(s)" in stdout and "4 computed, 0 resumed" in stdout
    assert "overlay: " in stdout and (out / "overlay.gif").is_file()
    assert "randomly initialised" in caplog.text  # no --fc-checkpoint: warned (on stderr outside pytest)
    code, stdout, stderr = _run(capsys, *args)
    assert code == 0, stderr
    assert f"through {CLIP_FRAMES} frame(s)" in stdout and f"{CLIP_FRAMES - 5} computed, 5 resumed" in stdout
    assert json.loads((out / "summary.json").read_text())["frames_resumed"] == 5


def test_kedro_command_forwards_propagate() -> None:
    assert "propagate" in cli.commands


def test_errors_are_one_line_with_exit_code_2(clip_mp4: Path, clip_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "text.mp4").write_text("not a video")
    write_mask(tmp_path / "small.png", np.ones((10, 10), np.uint8))
    write_mask(tmp_path / "empty.png", np.zeros((48, 64), np.uint8))
    (tmp_path / "nobox.json").write_text(json.dumps({"width": 64, "height": 48, "objects": []}))
    (tmp_path / "other.json").write_text(json.dumps({"shapes": []}))
    video, mask, out = str(clip_mp4), str(clip_dir / "first.png"), str(tmp_path / "out")
    cases = [
        (["--video", str(tmp_path / "nope.mp4"), "--mask", mask], "nope.mp4: video file or frame folder not found"),
        (["--video", str(tmp_path / "text.mp4"), "--mask", mask], "text.mp4: expected a video file"),
        (["--video", video, "--mask", str(tmp_path / "nope.png")], "nope.png: mask file not found"),
        (["--video", video, "--mask", str(tmp_path / "small.png")],
         "the mask is 10x10 (W x H) but the video's frames are 64x48 (W x H)"),
        (["--video", video, "--mask", str(tmp_path / "empty.png")], "expected at least one object"),
        (["--video", video, "--mask", str(tmp_path / "nobox.json")], "expected at least one polygon or box (simple-json layout), found none"),
        (["--video", video, "--mask", str(tmp_path / "other.json")], "unknown mask JSON layout"),
        (["--video", video, "--mask", mask, "--lambda", "1.5"], "give --semantic-arch too"),
        (["--video", video, "--mask", mask, "--out", str(tmp_path / "text.mp4")], "text.mp4: expected an output folder, found a file"),
    ]
    for args, message in cases:
        code, stdout, stderr = _run(capsys, "--out", out, *args)
        assert code == 2, (args, stderr)
        assert stderr.startswith("sfc propagate: error: ") and message in stderr, stderr
        assert stderr.count("\n") == 1, stderr
        assert stdout == ""
