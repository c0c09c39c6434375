"""Tests of the synthetic DAVIS-format demo dataset (:mod:`sfc.data.demo`, ``sfc demo-data``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sfc.cli import main as sfc_main
from sfc.data.demo import DEMO_META_FILE, make_demo_davis, make_tiny_davis, render_demo_sequence
from sfc.evaluation.davis.reader import (
    DavisFormatError,
    iter_frames,
    list_annotations,
    list_frames,
    load_sequence,
    read_annotations,
    read_split,
    resolve_sequences,
)

SMALL = {"n_sequences": 2, "n_frames": 5, "size": (48, 64)}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = _snapshot(make_demo_davis(tmp_path / "a", seed=3, **SMALL))
    b = _snapshot(make_demo_davis(tmp_path / "b", seed=3, **SMALL))
    assert a == b
    assert sum(k.endswith(".jpg") for k in a) == 10 and sum(k.endswith(".png") for k in a) == 10


def test_different_seed_gives_different_content(tmp_path: Path) -> None:
    a = _snapshot(make_demo_davis(tmp_path / "a", seed=0, **SMALL))
    b = _snapshot(make_demo_davis(tmp_path / "b", seed=1, **SMALL))
    assert a.keys() == b.keys()
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != b[k] for k in jpgs)


def test_layout_is_valid_davis(tiny_davis: Path) -> None:
    names = resolve_sequences(tiny_davis, "val", None)
    assert names == read_split(tiny_davis, "val") == ["demo-00", "demo-01"]
    for name in names:
        seq = load_sequence(tiny_davis, name)
        assert seq.size == (64, 96)
        assert list_frames(tiny_davis, name) == list_annotations(tiny_davis, name) == seq.frame_names
        assert seq.frame_names == [f"{t:05d}" for t in range(6)]
        n_obj = len(seq.object_ids)
        assert 2 <= n_obj <= 4 and seq.object_ids == list(range(1, n_obj + 1))
        masks = read_annotations(tiny_davis, name)
        assert masks.shape == (6, 64, 96) and int(masks.max()) <= n_obj
        frames = np.stack(list(iter_frames(seq)))
        assert frames.shape == (6, 64, 96, 3)
        # objects are textured and differ from the background
        for oid in seq.object_ids:
            inside = frames[0][masks[0] == oid].astype(np.float32)
            assert inside.std() > 5.0
        assert frames[0][masks[0] == 0].std() > 5.0


def test_objects_occlude_each_other(tiny_davis: Path) -> None:
    shrink_seen = False
    touching_seen = False
    for name in resolve_sequences(tiny_davis, "val", None):
        masks = read_annotations(tiny_davis, name)
        ids = sorted(int(i) for i in np.unique(masks[0]) if i > 0)
        areas = np.array([[(m == i).sum() for i in ids] for m in masks], dtype=np.float64)  # (T, K)
        if (areas.min(axis=0) < 0.6 * areas.max(axis=0)).any():
            shrink_seen = True
        horiz = (masks[:, :, 1:] != masks[:, :, :-1]) & (masks[:, :, 1:] > 0) & (masks[:, :, :-1] > 0)
        vert = (masks[:, 1:, :] != masks[:, :-1, :]) & (masks[:, 1:, :] > 0) & (masks[:, :-1, :] > 0)
        touching_seen |= bool(horiz.any() or vert.any())
    assert shrink_seen, "expected an object whose visible area shrinks by > 40% (occlusion)"
    assert touching_seen, "expected two objects in contact (one drawn over the other)"


def test_render_reports_real_occlusion_and_clean_first_frame() -> None:
    frames, masks, amodal = render_demo_sequence(seed=0, index=0, n_frames=6, size=(64, 96))
    assert frames.shape == (6, 64, 96, 3) and masks.shape == (6, 64, 96)
    n_obj = amodal.shape[1]
    visible = np.stack([masks == k + 1 for k in range(n_obj)], axis=1)  # (T, K, H, W)
    assert not (visible & ~amodal).any()  # visible silhouettes lie inside the full ones
    assert np.array_equal(visible[0], amodal[0])  # nobody hidden in the first frame
    assert (visible.sum((2, 3)) < amodal.sum((2, 3))).any()  # somebody hidden later
    assert (visible[0].sum((1, 2)) > 20).all()


def test_rerun_is_idempotent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_demo_davis(tmp_path / "d", **SMALL)
    before, mtimes = _snapshot(root), _mtimes(root)
    with caplog.at_level(logging.INFO, logger="sfc.data.demo"):
        assert make_demo_davis(tmp_path / "d", **SMALL) == root
    assert "skipping" in caplog.text
    assert _mtimes(root) == mtimes and _snapshot(root) == before
    meta = json.loads((root / DEMO_META_FILE).read_text())
    assert meta["n_frames"] == 5 and meta["size"] == [48, 64] and meta["seed"] == 0

    make_demo_davis(root, overwrite=True, **SMALL)  # forced regeneration: same bytes
    assert _snapshot(root) == before


def test_incomplete_or_different_dataset_is_regenerated(tmp_path: Path) -> None:
    root = make_demo_davis(tmp_path / "d", n_sequences=3, n_frames=4, size=(48, 64))
    (root / "JPEGImages" / "480p" / "demo-01" / "00002.jpg").unlink()
    make_demo_davis(root, n_sequences=3, n_frames=4, size=(48, 64))
    assert len(list_frames(root, "demo-01")) == 4

    make_demo_davis(root, n_sequences=2, n_frames=3, size=(48, 64))  # other arguments
    assert read_split(root, "val") == ["demo-00", "demo-01"]
    assert not (root / "JPEGImages" / "480p" / "demo-02").exists()
    assert not (root / "Annotations" / "480p" / "demo-02").exists()
    for name in ("demo-00", "demo-01"):
        assert list_frames(root, name) == list_annotations(root, name) == ["00000", "00001", "00002"]


def test_refuses_foreign_dataset(tmp_path: Path) -> None:
    foreign = tmp_path / "real"
    (foreign / "JPEGImages" / "480p" / "bear").mkdir(parents=True)
    with pytest.raises(DavisFormatError, match="not made by make_demo_davis"):
        make_demo_davis(foreign, **SMALL)
    assert (foreign / "JPEGImages" / "480p" / "bear").is_dir()


@pytest.mark.parametrize(
    "kwargs",
    [{"n_sequences": 0}, {"n_frames": 0}, {"size": (16, 64)}, {"split": "../x"}],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_demo_davis(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_single_frame_and_custom_split(tmp_path: Path) -> None:
    root = make_demo_davis(tmp_path, n_sequences=1, n_frames=1, size=(32, 32), split="train")
    assert read_split(root, "train") == ["demo-00"]
    assert load_sequence(root, "demo-00").frame_names == ["00000"]


def test_make_tiny_davis(tmp_path: Path) -> None:
    root = make_tiny_davis(tmp_path)
    assert load_sequence(root, "demo-00").size == (64, 96)


def test_cli_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = [
        str(out),
        "--n-sequences",
        "1",
        "--n-frames",
        "3",
        "--height",
        "40",
        "--width",
        "56",
        "--seed",
        "5",
    ]
    assert sfc_main(["demo-data", *args]) == 0
    seq = load_sequence(out, "demo-00")
    assert seq.size == (40, 56) and len(seq.frame_names) == 3
    assert json.loads((out / DEMO_META_FILE).read_text())["seed"] == 5


def test_default_dataset(tmp_path: Path) -> None:
    root = make_demo_davis(tmp_path)
    assert resolve_sequences(root, "val", None) == ["demo-00", "demo-01", "demo-02"]
    seq = load_sequence(root, "demo-02")
    assert seq.size == (192, 320) and len(seq.frame_names) == 20
