"""Tests of the one atomic-write helper (:mod:`sfc.atomic`) and the one device resolver (:mod:`sfc.device`)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from sfc.atomic import atomic_path, previous_path, remove_stale_temporaries, write_json, write_text
from sfc.device import check_device_name, resolve_device


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_text_and_json_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a" / "t.csv", "x,y\n1,2\n")
        write_json(tmp_path / "m.json", {"JF_mean": 0.5})
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "t.csv").read_text() == "x,y\n1,2\n"
    assert json.loads((tmp_path / "m.json").read_text()) == {"JF_mean": 0.5}
    assert _mode(tmp_path / "a" / "t.csv") == 0o644 and _mode(tmp_path / "m.json") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "m.json"]  # no temporary file left


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_keep_previous_and_temporary_suffix(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    for content in ("one", "two"):
        with atomic_path(target, durable=True, keep_previous=True) as tmp:
            assert tmp.suffix == ".ckpt" and tmp.parent == tmp_path and tmp.name.startswith(".")
            tmp.write_text(content)
    assert target.read_text() == "two" and previous_path(target).read_text() == "one"
    assert previous_path(target).name == "last.prev.ckpt"


def test_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="did not create"), atomic_path(tmp_path / "x.bin"):
        pass
    assert not (tmp_path / "x.bin").exists()


def test_remove_stale_temporaries(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a.pth") as tmp:
        tmp.write_text("partial")
        os.link(tmp, tmp_path / (tmp.name + "-killed"))  # what a SIGKILL mid-write would leave
        raise KeyboardInterrupt
    (tmp_path / "keep.txt").write_text("x")
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert remove_stale_temporaries(tmp_path / "missing") == 0


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda") and resolve_device("auto") == resolve_device(None)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        resolve_device("gpu")
    assert check_device_name("cuda:3") == "cuda:3"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="device 'cuda' requested but CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_gets_an_index() -> None:
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=0).type == "cuda"
