"""Tests of the synthetic JHMDB-layout demo dataset (:mod:`sfc.data.demo_jhmdb`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from sfc.data.demo_jhmdb import (
    DEMO_META_FILE,
    MAT_HEADER,
    SPLIT_FILE,
    demo_video_names,
    make_demo_jhmdb,
    render_demo_video,
)
from sfc.evaluation.jhmdb.reader import (
    FRAMES_DIR,
    JhmdbFormatError,
    iter_frames,
    list_videos,
    load_video,
    mat_path,
    read_split,
)

SMALL = {"n_videos": 2, "n_frames": 4, "size": (48, 64)}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_layout_read_by_the_reader(tmp_path: Path) -> None:
    root = make_demo_jhmdb(tmp_path / "d", **SMALL)  # type: ignore[arg-type]
    names = demo_video_names(2)
    assert names == ["demo/video_00", "demo/video_01"]
    assert list_videos(root) == names
    assert read_split(root, root / SPLIT_FILE) == names
    assert (root / SPLIT_FILE).read_text().splitlines()[0] == (
        "Rename_Images/demo/video_00 joint_positions/demo/video_00/joint_positions.mat"
    )
    for name in names:
        video = load_video(root, name)
        assert video.num_frames == 4 and video.size == (48, 64)
        assert [p.name for p in video.frame_paths] == ["00001.png", "00002.png", "00003.png", "00004.png"]
    meta = json.loads((root / DEMO_META_FILE).read_text())
    assert meta["videos"] == names and meta["size"] == [48, 64]
    assert not list(root.glob(".demo_jhmdb.tmp-*"))


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = _snapshot(make_demo_jhmdb(tmp_path / "a", seed=3, **SMALL))  # type: ignore[arg-type]
    b = _snapshot(make_demo_jhmdb(tmp_path / "b", seed=3, **SMALL))  # type: ignore[arg-type]
    assert a == b
    c = _snapshot(make_demo_jhmdb(tmp_path / "c", seed=4, **SMALL))  # type: ignore[arg-type]
    assert a.keys() == c.keys() and a != c
    mat = a["joint_positions/demo/video_00/joint_positions.mat"]
    assert mat[: len(MAT_HEADER)] == MAT_HEADER  # no creation date


def test_rerun_is_a_noop_and_other_args_regenerate(tmp_path: Path) -> None:
    root = make_demo_jhmdb(tmp_path, n_videos=3, n_frames=3, size=(40, 48))
    before = _mtimes(root)
    time.sleep(0.01)
    make_demo_jhmdb(tmp_path, n_videos=3, n_frames=3, size=(40, 48))
    assert _mtimes(root) == before
    make_demo_jhmdb(tmp_path, n_videos=1, n_frames=3, size=(40, 48))
    assert list_videos(root) == ["demo/video_00"]  # the old videos are gone
    assert read_split(root, root / SPLIT_FILE) == ["demo/video_00"]
    assert json.loads((root / DEMO_META_FILE).read_text())["n_videos"] == 1


def test_incomplete_dataset_is_redone(tmp_path: Path) -> None:
    root = make_demo_jhmdb(tmp_path, **SMALL)  # type: ignore[arg-type]
    expected = _snapshot(root)
    mat_path(root, "demo/video_01").unlink()
    make_demo_jhmdb(tmp_path, **SMALL)  # type: ignore[arg-type]
    assert _snapshot(root) == expected


def test_refuses_a_real_dataset_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / FRAMES_DIR / "catch" / "some_video").mkdir(parents=True)
    with pytest.raises(JhmdbFormatError, match="not made by make_demo_jhmdb"):
        make_demo_jhmdb(tmp_path, **SMALL)  # type: ignore[arg-type]
    make_demo_jhmdb(tmp_path, overwrite=True, **SMALL)  # type: ignore[arg-type]
    assert (tmp_path / FRAMES_DIR / "catch" / "some_video").is_dir()  # other videos left alone
    assert list_videos(tmp_path) == ["demo/video_00", "demo/video_01"]


@pytest.mark.parametrize(
    "kwargs", [{"n_videos": 0}, {"n_frames": 0}, {"size": (16, 64)}, {"size": (64,)}]
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="expected"):
        make_demo_jhmdb(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_joints_inside_frames_and_on_their_discs(tmp_path: Path) -> None:
    frames, pos_img = render_demo_video(0, 0, 8, (96, 128))
    assert frames.shape == (8, 96, 128, 3) and frames.dtype == np.uint8
    assert pos_img.shape == (2, 15, 8) and pos_img.dtype == np.float64
    x0, y0 = pos_img[0] - 1, pos_img[1] - 1  # 0-based pixel centres
    assert (x0 >= 0).all() and (x0 <= 127).all() and (y0 >= 0).all() and (y0 <= 95).all()
    # each joint's own disc colour sits at its position in every frame (drawn last, opaque at the centre)
    rows, cols = np.rint(y0).astype(int), np.rint(x0).astype(int)
    colours = frames[np.arange(8)[None, :], rows, cols]  # (15, 8, 3)
    same = (colours == colours[:, :1]).all(axis=(1, 2))
    assert same.sum() >= 13, same
    # the figure moves: joints travel between the first and the last frame
    assert np.hypot(*(pos_img[:, :, -1] - pos_img[:, :, 0])).mean() > 5


def test_written_arrays_match_the_renderer(tmp_path: Path) -> None:
    root = make_demo_jhmdb(tmp_path, seed=2, **SMALL)  # type: ignore[arg-type]
    frames, pos_img = render_demo_video(2, 1, 4, (48, 64))
    video = load_video(root, "demo/video_01")
    np.testing.assert_array_equal(video.pos_img, pos_img)
    np.testing.assert_array_equal(np.stack(list(iter_frames(video))), frames)
    assert set(scipy.io.loadmat(str(video.mat_path))) - {"__header__", "__version__", "__globals__"} == {"pos_img"}
    assert Image.open(video.frame_paths[0]).mode == "RGB"


def test_default_size_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    make_demo_jhmdb(tmp_path)
    assert time.perf_counter() - start < 4.0  # < 2 s on a free core; slack for shared CI machines
    assert load_video(tmp_path, "demo/video_00").size == (240, 320)
