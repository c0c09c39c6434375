"""Tests of the synthetic VIP-layout demo dataset (:mod:`sfc.data.demo_vip`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfc.data.demo_vip import (
    DEMO_VIP_META_FILE,
    DEMO_VIP_PARTS,
    VIDEO_LIST,
    make_demo_vip,
    render_demo_video,
)
from sfc.evaluation.vip.reader import (
    ANNOTATIONS_DIR,
    IGNORE,
    IMAGES_DIR,
    VipFormatError,
    list_videos,
    load_video,
    read_split,
)

SMALL = {"n_videos": 2, "n_frames": 4, "size": (64, 80)}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_default_dataset_layout_and_speed(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    root = make_demo_vip(tmp_path / "vip")
    assert time.perf_counter() - t0 < 5.0  # ~0.2 s alone; generous on a shared machine
    assert list_videos(root) == ["demo-00", "demo-01"]
    assert read_split(root, VIDEO_LIST) == ["demo-00", "demo-01"]
    meta = json.loads((root / DEMO_VIP_META_FILE).read_text())
    assert meta["n_videos"] == 2 and meta["n_frames"] == 8 and meta["size"] == [120, 160] and meta["seed"] == 0
    for name in ("demo-00", "demo-01"):
        video = load_video(root, name)  # the reader's full validation passes
        assert video.num_frames == 8 and video.size == (120, 160)
        assert len(list((root / IMAGES_DIR / name).glob("*.jpg"))) == 8
        pngs = sorted((root / ANNOTATIONS_DIR / name).glob("*.png"))
        assert [p.stem for p in pngs] == video.frame_names
        for png in pngs:
            with Image.open(png) as img:
                assert img.mode == "L"
                ids = set(np.unique(np.asarray(img)).tolist())
            assert IGNORE in ids and ids <= {0, IGNORE, *DEMO_VIP_PARTS}
        assert set(np.unique(video.first_labels).tolist()) == {0, IGNORE, *DEMO_VIP_PARTS}


def test_render_figure_moves_and_void_only_on_borders() -> None:
    frames, labels = render_demo_video(0, 0, 6, (120, 160))
    assert frames.shape == (6, 120, 160, 3) and frames.dtype == np.uint8 and labels.shape == (6, 120, 160)
    xs = [np.nonzero((lab != 0) & (lab != IGNORE))[1].mean() for lab in labels]
    assert abs(xs[-1] - xs[0]) > 10  # walks across the frame
    for lab in labels:
        void = lab == IGNORE
        assert 0 < void.sum() < 0.02 * lab.size
        ys, xs_ = np.nonzero(void)
        # each void pixel sits on a part border: some 4-neighbour has another (non-void) label ...
        padded = np.pad(lab, 1, mode="edge")
        neigh = np.stack([padded[ys, xs_ + 1], padded[ys + 2, xs_ + 1], padded[ys + 1, xs_], padded[ys + 1, xs_ + 2]])
        assert ((neigh != IGNORE).any(axis=0)).all()


def test_same_arguments_same_bytes_other_seed_other_content(tmp_path: Path) -> None:
    a = _snapshot(make_demo_vip(tmp_path / "a", seed=3, **SMALL))
    b = _snapshot(make_demo_vip(tmp_path / "b", seed=3, **SMALL))
    c = _snapshot(make_demo_vip(tmp_path / "c", seed=4, **SMALL))
    assert a == b and a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


def test_rerun_is_a_no_op_and_other_arguments_replace(tmp_path: Path) -> None:
    root = make_demo_vip(tmp_path / "vip", **SMALL)
    before = _mtimes(root)
    time.sleep(0.01)
    make_demo_vip(root, **SMALL)
    assert _mtimes(root) == before
    make_demo_vip(root, n_videos=1, n_frames=3, size=(64, 80))
    assert list_videos(root) == ["demo-00"] and load_video(root, "demo-00").num_frames == 3
    assert read_split(root, VIDEO_LIST) == ["demo-00"]


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = make_demo_vip(tmp_path / "vip", **SMALL)
    (root / ANNOTATIONS_DIR / "demo-01" / "000000000002.png").unlink()
    make_demo_vip(root, **SMALL)
    assert load_video(root, "demo-01").num_frames == 4


def test_refuses_a_non_demo_dataset_unless_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "vip"
    (root / IMAGES_DIR / "videos1").mkdir(parents=True)
    with pytest.raises(VipFormatError, match="not made by make_demo_vip"):
        make_demo_vip(root, **SMALL)
    make_demo_vip(root, overwrite=True, **SMALL)
    assert list_videos(root) == ["demo-00", "demo-01", "videos1"]


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_videos >= 1"):
        make_demo_vip(tmp_path, n_videos=0)
    with pytest.raises(ValueError, match="both >= 48"):
        make_demo_vip(tmp_path, size=(32, 64))
