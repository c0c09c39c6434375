"""Tests of ``python -m sfc.training`` (:mod:`sfc.training.__main__`): the script writes ``fc.pth`` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sfc.config import ConfigError
from sfc.models import load_backbone
from sfc.training import EXPORT_NAME, load_train_state
from sfc.training.__main__ import main
from tests.training.helpers import CHILD_ENV, REPO, assert_same_weights, fc_params


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _inputs(tmp_path: Path, frames: list[str], **params: object) -> tuple[Path, Path]:
    listing = tmp_path / "frames.txt"
    listing.write_text("\n".join(frames) + "\n\n")
    config = tmp_path / "fc_pretrain.json"
    config.write_text(json.dumps(params))
    return listing, config


def test_script_trains_and_writes_fc_pth_once(
    frames: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], umask_022: None
) -> None:
    params = fc_params("ignored/by/the/flag", steps=2, checkpoint_every=1, log_every=1)
    listing, config = _inputs(tmp_path, frames, **params)
    work = tmp_path / "work"
    assert main(["--frames", str(listing), "--config", str(config), "--work-dir", str(work)]) == 0

    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["final_step"] == 2 and printed["export"] is None
    assert printed["export_path"] == str(work / EXPORT_NAME)
    assert not Path("ignored").exists()  # --work-dir overrides the file's work_dir
    assert sorted(p.name for p in work.iterdir()) == [EXPORT_NAME, "last.ckpt", "last.prev.ckpt", "metrics.jsonl"]
    assert (work / EXPORT_NAME).stat().st_mode & 0o777 == 0o644
    _, info = load_backbone("resnet18", work / EXPORT_NAME)
    assert info.layout == "sfc_native" and info.metadata["step"] == 2
    export = torch.load(work / EXPORT_NAME, map_location="cpu", weights_only=True)
    assert_same_weights(load_train_state(work / "last.ckpt")["model"], export["model"])


def test_script_config_may_leave_out_work_dir_but_nothing_else(frames: list[str], tmp_path: Path) -> None:
    params = fc_params(tmp_path, steps=1)
    del params["work_dir"], params["lr"]
    listing, config = _inputs(tmp_path, frames, **params)
    with pytest.raises(ConfigError, match=r"fc_pretrain\.lr: missing") as info:
        main(["--frames", str(listing), "--config", str(config), "--work-dir", str(tmp_path / "work")])
    assert "work_dir" not in str(info.value)
    assert not (tmp_path / "work").exists()


def test_script_help_says_every_field_is_required() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sfc.training", "--help"], env=CHILD_ENV, cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "must give every fc_pretrain parameter" in proc.stdout
    assert "conf/base/parameters_fc_pretrain.yml" in proc.stdout and "--work-dir" in proc.stdout
