"""Tests of the frame index builder :mod:`sfc.data.frames` on small generated trees."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from sfc.data import frames
from sfc.data.frames import (
    DECODE_MARKER,
    INDEX_COLUMNS,
    REJECT_COLUMNS,
    FrameIndexError,
    VideoDecodeError,
    build_frame_index,
    decode_video,
    detect_kind,
    kind_patterns,
    probe_image,
)

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
#: ``frames.*`` of conf/base (the only place defaults live), without the root.
FRAMES_DEFAULTS = {
    k: v
    for k, v in yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters_extract_frames.yml").read_text()
    )["frames"].items()
    if k != "root"
}


# ----------------------------------------------------------------------------------------- helpers


def write_jpg(path: Path, size: tuple[int, int] = (32, 24), value: int = 128) -> Path:
    """Write a small JPEG of (width, height) ``size``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG", quality=90)
    return path


def write_video(path: Path, n_frames: int = 12, fps: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    """Write a tiny MPEG-4 video with PyAV (``n_frames`` frames at ``fps``)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n_frames):
            arr = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_tree(root: Path, kind: str) -> Path:
    """A tiny tree of the given layout (2 videos x 3 frames, or 3 COCO images)."""
    if kind in ("ytvos", "ytvos_csv", "davis", "davis_flat"):
        base = {
            "ytvos": root / "train_all_frames" / "JPEGImages",
            "ytvos_csv": root / "JPEGImages",
            "davis": root / "JPEGImages" / "480p",
            "davis_flat": root / "JPEGImages",
        }[kind]
        for video in ("vid_a", "vid_b"):
            for i in (0, 5, 10):
                write_jpg(base / video / f"{i:05d}.jpg")
        if kind == "ytvos_csv":
            (root / "ytvos.csv").write_text("vid_a,0,3\nvid_b,0,3\n")
    elif kind == "coco":
        for image_id in (139, 285, 632):
            write_jpg(root / "train2017" / f"{image_id:012d}.jpg")
    elif kind == "folder":
        for i in range(3):
            write_jpg(root / "seq" / f"{i:05d}.jpg")
        write_jpg(root / "top.jpg")
    elif kind == "videos":
        write_video(root / "clip.mp4")
    elif kind == "mixed":
        write_jpg(root / "imgs" / "a.jpg")
        write_video(root / "clips" / "clip.mp4")
    return root


def build(root: Path, tmp_path: Path, **kwargs):
    options = {**FRAMES_DEFAULTS, "output_dir": tmp_path / "decoded", "workers": 1, "progress": False}
    options.update(kwargs)
    return build_frame_index(root, options.pop("kind", "auto"), **options)


@pytest.fixture()
def count_probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every image opened by the index builder."""
    calls: list[str] = []
    real = frames.probe_image

    def spy(path, *, verify=True):
        calls.append(str(path))
        return real(path, verify=verify)

    monkeypatch.setattr(frames, "probe_image", spy)
    return calls


# ----------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    ("layout", "expected"),
    [("ytvos", "ytvos"), ("ytvos_csv", "ytvos"), ("coco", "coco"), ("davis", "davis"),
     ("davis_flat", "davis"), ("folder", "folder"), ("videos", "videos"), ("mixed", "mixed")],
)
def test_detect_kind(tmp_path: Path, layout: str, expected: str) -> None:
    assert detect_kind(make_tree(tmp_path / "root", layout)) == expected


def test_jpegimages_without_csv_or_subfolders(tmp_path: Path) -> None:
    # YouTube-VOS `train/` style without csv is read as DAVIS; a flat JPEGImages/ is a plain folder
    write_jpg(tmp_path / "flat" / "JPEGImages" / "00000.jpg")
    assert detect_kind(tmp_path / "flat") == "folder"


@pytest.mark.parametrize("layout", ["ytvos", "ytvos_csv", "davis", "davis_flat"])
def test_sequence_layouts(tmp_path: Path, layout: str) -> None:
    root = make_tree(tmp_path / "root", layout)
    result = build(root, tmp_path)
    index = result.index
    assert list(index.columns) == list(INDEX_COLUMNS)
    assert len(index) == 6 and result.rejects.empty
    assert index["source"].unique().tolist() == [layout.split("_")[0]]
    assert index["video"].tolist() == ["vid_a"] * 3 + ["vid_b"] * 3
    assert index["frame"].tolist() == [0, 5, 10, 0, 5, 10]  # numeric stems kept
    assert (index["width"] == 32).all() and (index["height"] == 24).all() and index["verified"].all()
    assert all(os.path.isabs(p) and Path(p).is_file() for p in index["path"])
    assert result.summary["frames"] == 6 and result.summary["videos"] == 2


def test_coco_layout(tmp_path: Path) -> None:
    result = build(make_tree(tmp_path / "root", "coco"), tmp_path)
    assert result.summary["kind"] == "coco"
    assert result.index["video"].tolist() == ["000000000139", "000000000285", "000000000632"]
    assert result.index["frame"].tolist() == [0, 0, 0] and (result.index["source"] == "coco").all()


def test_folder_layout_video_names_and_frame_order(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", "folder")
    for name in ("b_frame", "a_frame", "c_frame"):  # non-numeric stems: sorted order
        write_jpg(root / "named" / f"{name}.jpg")
    write_jpg(root / "upper" / "00001.JPEG")  # extensions are case-insensitive
    index = build(root, tmp_path).index
    by_video = {v: g for v, g in index.groupby("video")}
    assert set(by_video) == {"root", "seq", "named", "upper"}
    named = by_video["named"].sort_values("frame")
    assert [Path(p).stem for p in named["path"]] == ["a_frame", "b_frame", "c_frame"]
    assert named["frame"].tolist() == [0, 1, 2]
    assert by_video["upper"]["frame"].tolist() == [1]


def test_ytvos_csv_restricts_videos_and_reports_missing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", "ytvos_csv")
    (root / "ytvos.csv").write_text("vid_a,0,3\nghost,0,10\n")
    result = build(root, tmp_path)
    assert result.index["video"].unique().tolist() == ["vid_a"]  # vid_b is not listed
    assert result.rejects["video"].tolist() == ["ghost"]
    assert "listed in ytvos.csv" in result.rejects["reason"].iloc[0]


# ----------------------------------------------------------------------------------------- videos


@pytest.mark.parametrize(
    ("fps", "max_seconds", "expected"),
    [(None, None, 12), (6, None, 12), (2, None, 4), (3, None, 6), (2, 1.0, 2), (100, None, 12)],
)
def test_decode_video_frame_rate(tmp_path: Path, fps, max_seconds, expected: int) -> None:
    video = write_video(tmp_path / "clip.mp4")  # 12 frames at 6 fps = 2 s
    out = decode_video(video, tmp_path / "out" / "clip", fps=fps, max_seconds=max_seconds)
    assert out.decoded and out.frames == expected and (out.width, out.height) == (64, 48)
    names = sorted(p.name for p in (tmp_path / "out" / "clip").iterdir())
    assert names == sorted([DECODE_MARKER, *[f"{i:05d}.jpg" for i in range(expected)]])
    marker = json.loads((out.folder / DECODE_MARKER).read_text())
    assert marker["frames"] == expected and marker["fps"] == (None if fps is None else float(fps))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip"]  # no temporary folder left


def test_decode_video_reuses_and_redecodes(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4")
    folder = tmp_path / "out" / "clip"
    assert decode_video(video, folder, fps=2).decoded
    assert not decode_video(video, folder, fps=2).decoded  # same source and settings: reused
    again = decode_video(video, folder, fps=3)  # settings changed: decoded again, replaces the folder
    assert again.decoded and again.frames == 6 and len(list(folder.glob("*.jpg"))) == 6
    (folder / "00002.jpg").unlink()  # a damaged output folder is rebuilt
    assert decode_video(video, folder, fps=3).decoded


def test_garbage_video_raises_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoDecodeError, match="cannot open video"):
        decode_video(bad, tmp_path / "out" / "bad")
    assert list((tmp_path / "out").iterdir()) == []


def test_videos_kind_index(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", "videos")
    write_video(root / "sub" / "other.mp4", n_frames=6)
    result = build(root, tmp_path, video_fps=2)
    index = result.index
    assert result.summary["kind"] == "videos" and result.summary["videos_decoded"] == 2
    assert index.groupby("video").size().to_dict() == {"clip": 4, "sub/other": 2}
    assert (index["source"] == "video").all() and index["frame"].tolist() == [0, 1, 2, 3, 0, 1]
    assert Path(index["path"].iloc[0]) == (tmp_path / "decoded" / "clip" / "00000.jpg").absolute()
    assert all(probe_image(p) == (64, 48) for p in index["path"])


def test_mixed_tree_each_file_by_kind(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", "mixed")
    result = build(root, tmp_path, output_dir=root / "decoded", video_fps=2)  # output inside the root
    assert result.summary["kind"] == "mixed"
    assert result.index.groupby("source").size().to_dict() == {"folder": 1, "video": 4}
    rerun = build(root, tmp_path, output_dir=root / "decoded", video_fps=2, previous_index=result.index)
    assert len(rerun.index) == 5  # decoded frames are never indexed back as images


# ----------------------------------------------------------------------------------------- rejects


def test_bad_files_go_to_rejects(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for i in range(3):
        write_jpg(root / "seq" / f"{i:05d}.jpg", size=(320, 240))
    truncate(root / "seq" / "00001.jpg", keep=0.4)
    (root / "seq" / "00002.jpg").write_bytes(b"")
    write_video(root / "good.mp4")
    (root / "broken.mp4").write_bytes(os.urandom(2000))
    (root / "masks").mkdir()
    Image.new("P", (8, 8)).save(root / "masks" / "00000.png")

    result = build(root, tmp_path, video_fps=2)
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)
    reasons = {Path(p).name: r for p, r in zip(result.rejects["path"], result.rejects["reason"])}
    assert set(reasons) == {"00001.jpg", "00002.jpg", "broken.mp4", "masks"}
    assert "truncated" in reasons["00001.jpg"] and "unreadable" in reasons["00002.jpg"]
    assert reasons["broken.mp4"].startswith("undecodable video")
    assert reasons["masks"].startswith("no image files") and "00000.png" in reasons["masks"]
    assert result.index.groupby("source").size().to_dict() == {"folder": 1, "video": 4}
    assert result.summary["rejects"] == 4


def test_verify_false_reads_headers_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_jpg(root / "a.jpg", size=(320, 240))
    truncate(write_jpg(root / "b.jpg", size=(320, 240)), keep=0.5)
    fast = build(root, tmp_path, verify=False)
    assert len(fast.index) == 2 and not fast.index["verified"].any()  # header-only misses truncation
    full = build(root, tmp_path, verify=True, previous_index=fast.index)  # unverified rows are re-checked
    assert len(full.index) == 1 and full.rejects["reason"].str.contains("truncated").all()


def test_empty_root_and_missing_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameIndexError, match=r"empty: no frames found \(kind 'folder', searched \*\*/\{\*\.jpg"):
        build(tmp_path / "empty", tmp_path)
    with pytest.raises(FrameIndexError, match="nowhere: frame root not found"):
        build(tmp_path / "nowhere", tmp_path)


def test_all_files_rejected_is_an_error_that_shows_reasons(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "seq").mkdir(parents=True)
    (root / "seq" / "00000.jpg").write_bytes(b"nope")
    with pytest.raises(FrameIndexError, match=r"no frames found .* 1 file\(s\)/folder\(s\) rejected, e.g. .*00000.jpg"):
        build(root, tmp_path)


def test_explicit_kind_must_match_layout(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", "davis")
    with pytest.raises(FrameIndexError, match=r"root: frames.kind is 'coco', which expects train2017/.*\(auto-detection says 'davis'"):
        build(root, tmp_path, kind="coco")
    with pytest.raises(FrameIndexError, match=r"no frames found \(kind 'videos'.*auto-detection says 'davis'"):
        build(root, tmp_path, kind="videos")
    with pytest.raises(FrameIndexError, match="unknown frames kind 'kinetics'"):
        build(root, tmp_path, kind="kinetics")
    assert build(root, tmp_path, kind="folder").summary["frames"] == 6  # any tree is a folder of images


def test_kind_patterns_lists_every_kind() -> None:
    assert kind_patterns("coco") == ["train2017/{*.jpg,*.jpeg}"]
    assert all(kind_patterns(k) for k in frames.KINDS)


# ----------------------------------------------------------------------------------------- incremental


def test_rerun_over_unchanged_inputs_does_no_work(
    tmp_path: Path, count_probes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "root", "folder")
    truncate(write_jpg(root / "seq" / "bad.jpg", size=(320, 240)), keep=0.3)
    write_video(root / "clip.mp4")
    (root / "empty_leaf").mkdir()  # a folder reject (null size) in the same table as a file reject
    first = build(root, tmp_path, kind="mixed", video_fps=2)
    assert len(count_probes) == 5 and first.summary["videos_decoded"] == 1

    import av

    def no_decode(*args, **kwargs):
        raise AssertionError("a video was decoded on an unchanged rerun")

    monkeypatch.setattr(av, "open", no_decode)
    count_probes.clear()
    second = build(root, tmp_path, kind="mixed", video_fps=2,
                   previous_index=first.index, previous_rejects=first.rejects)
    assert count_probes == []  # neither good nor rejected images were reopened
    pd.testing.assert_frame_equal(second.index, first.index)
    pd.testing.assert_frame_equal(second.rejects, first.rejects)
    s = second.summary
    assert (s["images_probed"], s["images_reused"], s["rejects_reused"]) == (0, 4, 1)
    assert (s["videos_decoded"], s["videos_reused"]) == (0, 1)


def test_changed_files_are_rescanned(tmp_path: Path, count_probes: list[str]) -> None:
    root = make_tree(tmp_path / "root", "davis")
    first = build(root, tmp_path)
    count_probes.clear()
    changed = write_jpg(root / "JPEGImages" / "480p" / "vid_a" / "00005.jpg", size=(40, 30))
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse file systems
    write_jpg(root / "JPEGImages" / "480p" / "vid_b" / "00015.jpg")  # a new file
    second = build(root, tmp_path, previous_index=first.index)
    assert sorted(Path(p).name for p in count_probes) == ["00005.jpg", "00015.jpg"]
    row = second.index[second.index["path"] == str(changed.absolute())].iloc[0]
    assert (row["width"], row["height"]) == (40, 30)
    assert len(second.index) == 7


def test_previous_index_with_unexpected_schema_is_ignored(
    tmp_path: Path, count_probes: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = make_tree(tmp_path / "root", "coco")
    with caplog.at_level(logging.WARNING, logger="sfc.data.frames"):
        result = build(root, tmp_path, previous_index=pd.DataFrame({"path": ["x"]}))
    assert "lacks column(s)" in caplog.text and len(count_probes) == 3 and len(result.index) == 3


def test_index_round_trips_through_parquet(tmp_path: Path, count_probes: list[str]) -> None:
    root = make_tree(tmp_path / "root", "davis")
    first = build(root, tmp_path)
    first.index.to_parquet(tmp_path / "index.parquet")
    count_probes.clear()
    second = build(root, tmp_path, previous_index=pd.read_parquet(tmp_path / "index.parquet"))
    assert count_probes == [] and second.summary["images_reused"] == 6


# ----------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (REALDATA / "frames" / "cutie_bike").is_dir(),
                    reason=f"real data not found at {REALDATA}/frames/cutie_bike")
def test_real_frame_folder(tmp_path: Path) -> None:
    result = build(REALDATA / "frames" / "cutie_bike", tmp_path)
    assert len(result.index) == 4 and result.index["frame"].tolist() == [0, 1, 2, 3]
    assert result.index["video"].unique().tolist() == ["JPEGImages"]
    assert result.rejects["reason"].str.startswith("no image files").all()  # the PNG mask folder
    for path, w, h in result.index[["path", "width", "height"]].itertuples(index=False):
        with Image.open(path) as img:
            assert img.size == (w, h)


@pytest.mark.skipif(not (REALDATA / "videos" / "sam2_gallery_04_coffee.mp4").is_file(),
                    reason=f"real video not found at {REALDATA}/videos/sam2_gallery_04_coffee.mp4")
def test_real_video_first_second(tmp_path: Path) -> None:
    out = decode_video(REALDATA / "videos" / "sam2_gallery_04_coffee.mp4", tmp_path / "coffee",
                       fps=2, max_seconds=1.0)
    assert out.frames == 2 and (out.width, out.height) == (1280, 720)
    assert probe_image(out.frame_paths()[1]) == (1280, 720)
