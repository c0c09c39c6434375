"""Tests of :mod:`sfc.training.data`: the seeded frame stream, the step sampler and bad-frame skipping."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sfc.training import FrameDataset, StepSampler, build_frame_dataset, collate_crops
from tests.training.helpers import fc_config, write_frames


def test_stream_is_seeded_per_position_and_covers_each_epoch(frames: list[str], tmp_path: Path) -> None:
    cfg = fc_config(tmp_path)
    ds = build_frame_dataset(frames, cfg)
    epoch0 = sorted(ds.frame_index(p) for p in range(len(frames)))
    assert epoch0 == list(range(len(frames)))
    other = FrameDataset(frames, ds.crops, seed=cfg.seed, min_size=cfg.min_size)
    a, b = ds[9], other[9]  # fresh instance, same position -> same frame and crops
    assert (
        a["frame"] == b["frame"] and torch.equal(a["view1"], b["view1"]) and torch.equal(a["box2"], b["box2"])
    )
    assert not torch.equal(ds[10]["box1"], a["box1"])


def test_collate_stacks_views_and_concatenates_skips(frames: list[str], tmp_path: Path) -> None:
    ds = build_frame_dataset(frames, fc_config(tmp_path))
    batch = collate_crops([ds[0], ds[1], ds[2]])
    assert batch["view1"].shape == (3, 3, 16, 16) and batch["box2"].shape == (3, 4)
    assert batch["position"].tolist() == [0, 1, 2] and batch["skipped"] == []


def test_step_sampler_shards_each_global_batch() -> None:
    single = list(StepSampler(2, 4, batch_size=4))
    shards = [list(StepSampler(2, 4, batch_size=4, rank=r, world_size=2)) for r in range(2)]
    assert single == list(range(8, 16))
    assert shards == [[8, 9, 12, 13], [10, 11, 14, 15]]
    assert len(StepSampler(2, 4, batch_size=4, rank=1, world_size=2)) == 4
    with pytest.raises(ValueError, match="divisible"):
        StepSampler(0, 1, batch_size=3, world_size=2)


def test_bad_frames_are_skipped_with_a_report(tmp_path: Path) -> None:
    good = write_frames(tmp_path / "good", 2)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    small = write_frames(tmp_path / "small", 1, size=(8, 8))[0]
    crops = build_frame_dataset(good, fc_config(tmp_path)).crops
    ds = FrameDataset([str(corrupt), good[0], small, good[1]], crops, min_size=16)
    seen = [ds[p] for p in range(4)]
    reports = [msg for s in seen for msg in s["skipped"]]
    assert len(reports) == 2
    assert any("corrupt.jpg" in m for m in reports) and any("min_size" in m for m in reports)
    assert {s["frame"] for s in seen} <= {1, 3}
    all_bad = FrameDataset([str(corrupt), small, str(tmp_path / "missing.png")], ds.crops, min_size=16)
    with pytest.raises(RuntimeError, match="consecutive frames could not be used"):
        all_bad[0]
