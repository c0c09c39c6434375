"""Tests of :mod:`sfc.training.checkpoint`: atomic ``last.ckpt`` saves, validation, ``metrics.jsonl``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sfc.training import ResumeError, load_train_state
from sfc.training import checkpoint as ckpt
from tests.training.helpers import fc_config


def _state(step: int) -> dict[str, object]:
    return {"format": "sfc_native", "kind": ckpt.TRAIN_STATE_KIND, "step": step, "model": {}, "optimizer": {},
            "rng": {}, "data": {}, "config": {}}


def test_save_keeps_the_previous_state_and_never_leaves_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_train_state(_state(1), path)
    ckpt.save_train_state(_state(2), path)
    assert load_train_state(path)["step"] == 2
    assert load_train_state(tmp_path / ckpt.PREVIOUS_CHECKPOINT_NAME)["step"] == 1

    def crash(obj: object, f: object, *args: object, **kwargs: object) -> None:
        Path(f).write_bytes(b"partial")  # type: ignore[arg-type]  # a crash halfway through the write
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_train_state(_state(3), path)
    monkeypatch.undo()
    assert load_train_state(path)["step"] == 2
    assert load_train_state(tmp_path / ckpt.PREVIOUS_CHECKPOINT_NAME)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.prev.ckpt"]


def test_load_names_the_file_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ResumeError, match=r"last\.ckpt: not a readable checkpoint.*Delete .*last\.ckpt"):
        load_train_state(path)
    torch.save({"step": 3, "format": "sfc_native", "kind": "fc_export", "model": {}}, path)
    (tmp_path / "last.prev.ckpt").write_bytes(b"")
    with pytest.raises(ResumeError, match=r"expected a training state.*move the previous checkpoint"):
        load_train_state(path)
    torch.save({**_state(-1)}, path)
    with pytest.raises(ResumeError, match="incomplete training state"):
        load_train_state(path)
    assert ckpt.saved_step(path) == -1 and ckpt.saved_step(tmp_path / "missing.ckpt") == "unreadable"


def test_check_resumable_compares_trajectory_options_and_frames(tmp_path: Path) -> None:
    config = fc_config(tmp_path, steps=4)
    paths = ["a.jpg", "b.jpg"]
    state = {"step": 2, "config": config.training_options(),
             "data": {"n_frames": 2, "frames_sha256": ckpt.frames_fingerprint(paths)}}
    path = tmp_path / "last.ckpt"
    ckpt.check_resumable(state, config, paths, path)
    # placement and non-trajectory options may change
    ckpt.check_resumable(state, fc_config(tmp_path / "moved", steps=4, num_workers=3, nproc_per_node=2), paths, path)
    with pytest.raises(ResumeError, match=r"other settings \(lr: checkpoint 0\.001 vs now 0\.0005\)"):
        ckpt.check_resumable(state, fc_config(tmp_path, steps=4, lr=5e-4), paths, path)
    with pytest.raises(ResumeError, match="trained on 2 frames, now 1"):
        ckpt.check_resumable(state, config, paths[:1], path)
    with pytest.raises(ResumeError, match="already at step 2 > steps=1"):
        ckpt.check_resumable(state, fc_config(tmp_path, steps=1), paths, path)


def test_rng_state_round_trip() -> None:
    state = ckpt.rng_state()
    first = (torch.rand(3), np.random.rand(), random.random())
    ckpt.set_rng_state(state)
    again = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_truncate_metrics_drops_records_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / ckpt.METRICS_NAME
    ckpt.truncate_metrics(path, 2)  # no file: nothing to do
    assert not path.exists()
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + "garbage\n")
    ckpt.truncate_metrics(path, 2)
    assert [json.loads(line)["step"] for line in ckpt.read_metrics(path)] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.METRICS_NAME]  # atomic: no temporary left
