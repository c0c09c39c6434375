"""Tests of the VIP reader (:mod:`sfc.evaluation.vip.reader`) on the generated demo dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfc.evaluation.vip.reader import (
    ANNOTATIONS_DIR,
    CLASSES,
    IGNORE,
    IMAGES_DIR,
    N_CLASSES,
    VipFormatError,
    iter_frames,
    list_frames,
    list_videos,
    load_video,
    read_labels,
    read_split,
)

VIDEOS = ["demo-00", "demo-01"]


def _ann(root: Path, video: str, frame: str) -> Path:
    return root / ANNOTATIONS_DIR / video / f"{frame}.png"


def _save_gray(path: Path, labels: np.ndarray) -> None:
    Image.fromarray(labels.astype(np.uint8)).save(path)


def test_classes_are_the_official_twenty() -> None:
    assert N_CLASSES == 20 and IGNORE == 255 and len(CLASSES) == 20
    assert CLASSES[0] == "background" and CLASSES[4] == "upper-clothes" and CLASSES[13] == "face"
    assert CLASSES[14:] == ("right-arm", "left-arm", "right-leg", "left-leg", "right-shoe", "left-shoe")


def test_layout_videos_and_frames(demo_vip: Path) -> None:
    assert list_videos(demo_vip) == VIDEOS
    frames = list_frames(demo_vip, "demo-00")
    assert frames == [f"{t:012d}" for t in range(1, 9)]


def test_list_videos_without_images_folder(tmp_path: Path) -> None:
    with pytest.raises(VipFormatError, match=r"VIP_Fine/Images.*frame folder not found"):
        list_videos(tmp_path)


def test_frames_sorted_numerically(vip_copy: Path) -> None:
    folder = vip_copy / IMAGES_DIR / "demo-00"
    for i, path in enumerate(sorted(folder.glob("*.jpg"))):
        path.rename(folder / f"{(i + 1) * 5}.jpg")  # 5, 10, ..., 40: lexicographic order differs
    assert list_frames(vip_copy, "demo-00") == [str(5 * (i + 1)) for i in range(8)]


def test_read_split_relative_to_root_blank_lines_and_duplicates(demo_vip: Path, tmp_path: Path) -> None:
    assert read_split(demo_vip, "lists/val_videos.txt") == VIDEOS
    listing = tmp_path / "mine.txt"
    listing.write_text("\n  demo-01  \n\ndemo-00\ndemo-01\n")
    assert read_split(demo_vip, listing) == ["demo-01", "demo-00"]  # absolute path, file order, first kept


def test_read_split_unknown_names_listed_with_available(demo_vip: Path, tmp_path: Path) -> None:
    listing = tmp_path / "bad.txt"
    listing.write_text("demo-00\nnope\nalso-nope\n")
    with pytest.raises(VipFormatError, match=r"unknown video\(s\) 'nope', 'also-nope'.*found: demo-00, demo-01"):
        read_split(demo_vip, listing)


def test_read_split_missing_or_empty(demo_vip: Path, tmp_path: Path) -> None:
    with pytest.raises(VipFormatError, match="video list not found"):
        read_split(demo_vip, "lists/test_videos.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(VipFormatError, match="empty list"):
        read_split(demo_vip, empty)


def test_load_video(demo_vip: Path) -> None:
    video = load_video(demo_vip, "demo-01")
    assert video.name == "demo-01" and video.num_frames == len(video) == 8
    assert video.size == (120, 160)
    assert video.frame_paths[0] == demo_vip / IMAGES_DIR / "demo-01" / "000000000001.jpg"
    assert list(video.annotation_paths) == video.frame_names
    assert all(p.is_file() for p in video.annotation_paths.values())
    assert video.first_labels.dtype == np.uint8 and video.first_labels.shape == (120, 160)
    values = set(np.unique(video.first_labels).tolist())
    assert {0, 2, 4, 8, 13, 14, 15, 16, 17, IGNORE} <= values <= set(range(20)) | {IGNORE}
    frames = list(iter_frames(video))
    assert len(frames) == 8 and all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)


def test_load_video_max_frames(demo_vip: Path) -> None:
    video = load_video(demo_vip, "demo-00", max_frames=3)
    assert video.frame_names == [f"{t:012d}" for t in (1, 2, 3)] and len(video.annotation_paths) == 3
    with pytest.raises(VipFormatError, match="max_frames >= 1"):
        load_video(demo_vip, "demo-00", max_frames=0)


def test_missing_annotation_frame_is_named(vip_copy: Path) -> None:
    missing = _ann(vip_copy, "demo-00", "000000000005")
    missing.unlink()
    with pytest.raises(VipFormatError, match=rf"{missing}: annotation of frame '000000000005'.*not found"):
        load_video(vip_copy, "demo-00")
    load_video(vip_copy, "demo-00", max_frames=4)  # frames beyond max_frames are not needed


def test_missing_first_annotation(vip_copy: Path) -> None:
    _ann(vip_copy, "demo-00", "000000000001").unlink()
    with pytest.raises(VipFormatError, match="first-frame annotation not found"):
        load_video(vip_copy, "demo-00")


def test_first_frame_values_outside_classes_named(vip_copy: Path) -> None:
    path = _ann(vip_copy, "demo-00", "000000000001")
    labels = read_labels(path)
    labels[0, 0], labels[0, 1] = 20, 77  # 255 is void and allowed; 20..254 are not ids
    _save_gray(path, labels)
    with pytest.raises(VipFormatError, match=rf"{path}: expected part ids 0..19 or 255.*found \[20, 77\]"):
        load_video(vip_copy, "demo-00")


def test_first_frame_only_void(vip_copy: Path) -> None:
    path = _ann(vip_copy, "demo-00", "000000000001")
    _save_gray(path, np.full((120, 160), IGNORE, np.uint8))
    with pytest.raises(VipFormatError, match="only void"):
        load_video(vip_copy, "demo-00")


def test_rgb_label_png_refused(vip_copy: Path) -> None:
    path = _ann(vip_copy, "demo-01", "000000000001")
    labels = read_labels(path)
    Image.fromarray(np.repeat(labels[..., None], 3, axis=-1)).save(path)
    with pytest.raises(VipFormatError, match=rf"{path}: expected a greyscale \('L'\) or palette.*mode 'RGB'"):
        read_labels(path)
    with pytest.raises(VipFormatError, match="mode 'RGB'"):
        load_video(vip_copy, "demo-01")


def test_rgb_annotation_of_later_frame_refused_up_front(vip_copy: Path) -> None:
    path = _ann(vip_copy, "demo-01", "000000000006")
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(path)
    with pytest.raises(VipFormatError, match=rf"{path}.*mode 'RGB'"):
        load_video(vip_copy, "demo-01")


def test_palette_label_png_reads_indices(tmp_path: Path) -> None:
    labels = np.arange(20 * 4, dtype=np.uint8).reshape(8, 10) % 20
    img = Image.fromarray(labels).convert("P")  # L -> P keeps the values as indices
    img.putpalette([255 - (i % 256) for i in range(768)])
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_labels(tmp_path / "p.png"), labels)


def test_annotation_size_mismatch(vip_copy: Path) -> None:
    path = _ann(vip_copy, "demo-00", "000000000003")
    _save_gray(path, np.zeros((60, 80), np.uint8))
    with pytest.raises(VipFormatError, match=rf"{path}: expected an annotation of the first frame's size"):
        load_video(vip_copy, "demo-00")


def test_video_with_no_frames(vip_copy: Path) -> None:
    (vip_copy / IMAGES_DIR / "empty").mkdir()
    with pytest.raises(VipFormatError, match=r"Images/empty: expected JPEG frames \(\*\.jpg\), found none"):
        load_video(vip_copy, "empty")
    with pytest.raises(VipFormatError, match="video frame folder not found"):
        load_video(vip_copy, "absent")


def test_unreadable_label_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(VipFormatError, match=rf"{bad}: expected a readable PNG"):
        read_labels(bad)
    with pytest.raises(VipFormatError, match="not found"):
        read_labels(tmp_path / "missing.png")


def test_iter_frames_checks_sizes(vip_copy: Path) -> None:
    video = load_video(vip_copy, "demo-00")
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(video.frame_paths[2])
    with pytest.raises(VipFormatError, match=r"expected frame size \(H, W\) = \(120, 160\)"):
        list(iter_frames(video))
