"""Tests of the JHMDB reader :mod:`sfc.evaluation.jhmdb.reader` on generated data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from sfc.evaluation.jhmdb.reader import (
    FRAMES_DIR,
    JOINTS,
    JOINTS_DIR,
    MAT_NAME,
    JhmdbFormatError,
    frame_folder,
    iter_frames,
    list_frame_files,
    list_videos,
    load_video,
    mat_path,
    read_pos_img,
    read_split,
)
from tests.evaluation.jhmdb.conftest import TINY_JHMDB_KWARGS

VIDEO = "demo/video_00"
N_FRAMES = int(str(TINY_JHMDB_KWARGS["n_frames"]))


def _write_split(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- layout
def test_joints_are_the_jhmdb_order() -> None:
    assert len(JOINTS) == 15
    assert JOINTS[0] == "neck" and JOINTS[2] == "face" and JOINTS[14] == "left_ankle"
    assert JOINTS.index("right_wrist") == 11


def test_list_videos_lists_videos_with_frames_and_mat(jhmdb_copy: Path) -> None:
    assert list_videos(jhmdb_copy) == ["demo/video_00", "demo/video_01"]
    (jhmdb_copy / FRAMES_DIR / "aaa" / "no_mat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(jhmdb_copy / FRAMES_DIR / "aaa" / "no_mat" / "00001.png")
    (jhmdb_copy / FRAMES_DIR / "aaa" / "no_frames").mkdir(parents=True)
    (jhmdb_copy / JOINTS_DIR / "aaa" / "no_frames").mkdir(parents=True)
    shutil.copy(mat_path(jhmdb_copy, VIDEO), jhmdb_copy / JOINTS_DIR / "aaa" / "no_frames" / MAT_NAME)
    assert list_videos(jhmdb_copy) == ["demo/video_00", "demo/video_01"]


def test_list_videos_without_frame_folder(tmp_path: Path) -> None:
    with pytest.raises(JhmdbFormatError, match="Rename_Images"):
        list_videos(tmp_path)


def test_load_video(tiny_jhmdb: Path) -> None:
    video = load_video(tiny_jhmdb, VIDEO)
    assert video.name == VIDEO
    assert video.num_frames == len(video) == N_FRAMES
    assert [p.name for p in video.frame_paths] == [f"{t:05d}.png" for t in range(1, N_FRAMES + 1)]
    assert video.mat_path == tiny_jhmdb / JOINTS_DIR / "demo" / "video_00" / MAT_NAME
    assert video.pos_img.shape == (2, 15, N_FRAMES) and video.pos_img.dtype == np.float64
    assert video.size == tuple(TINY_JHMDB_KWARGS["size"])  # type: ignore[arg-type]
    frames = list(iter_frames(video))
    assert len(frames) == N_FRAMES
    assert all(f.shape == (*video.size, 3) and f.dtype == np.uint8 for f in frames)


def test_frames_sorted_numerically_as_the_official_code(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("10.png", "9.png", "00002.png", "1.PNG", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in list_frame_files(folder)] == ["1.PNG", "00002.png", "9.png", "10.png"]


@pytest.mark.parametrize("name", ["video_00", "demo/video_00/x", "../demo", "demo/..", ""])
def test_bad_video_names(tiny_jhmdb: Path, name: str) -> None:
    with pytest.raises(JhmdbFormatError, match="<class>/<video>"):
        load_video(tiny_jhmdb, name)


# ------------------------------------------------------------------------------------------- splits
def test_read_split_crw_relative_paths(tiny_jhmdb: Path) -> None:
    # the demo split: `Rename_Images/demo/video_00 joint_positions/demo/video_00/joint_positions.mat`
    assert read_split(tiny_jhmdb, tiny_jhmdb / "splits" / "demo_test.txt") == ["demo/video_00", "demo/video_01"]


def test_read_split_crw_absolute_paths_of_another_machine(tiny_jhmdb: Path, tmp_path: Path) -> None:
    split = _write_split(
        tmp_path / "test.split.txt",
        "\n/scratch/data/jhmdb/Rename_Images/demo/video_01 /scratch/data/jhmdb/joint_positions/demo/video_01/"
        "joint_positions.mat\n\n"
        f"{tiny_jhmdb / FRAMES_DIR / 'demo' / 'video_00'}/\t{mat_path(tiny_jhmdb, VIDEO)}\n"
        "/x/Rename_Images/demo/video_01 /x/joint_positions/demo/video_01/joint_positions.mat\n",
    )
    assert read_split(tiny_jhmdb, split) == ["demo/video_01", "demo/video_00"]  # file order, duplicate kept once


def test_read_split_jhmdb_format_keeps_test_videos(tiny_jhmdb: Path, tmp_path: Path) -> None:
    split = _write_split(tmp_path / "demo_test_split1.txt", "video_00.avi 1\n\nvideo_01.avi 2 \n")
    assert read_split(tiny_jhmdb, split) == ["demo/video_01"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a b c\n", r"line 1: expected '<frame folder> <joint_positions.mat>' or '<video>.avi <1\|2>'"),
        ("\nonly_one_field\n", "line 2: expected"),
        ("video_00.avi 3\n", r"line 1: expected '<video>.avi <1\|2>'"),
        ("video_00.avi 2\nRename_Images/demo/video_01 joint_positions/demo/video_01/joint_positions.mat\n",
         r"line 2: expected '<video>.avi <1\|2>' like the first line"),
        ("Rename_Images/demo/video_00 joint_positions/demo/video_01/joint_positions.mat\n",
         "line 1: expected the frame folder and the joint file of the same video"),
        ("Rename_Images/demo/video_00 joint_positions/demo/video_00/pos.mat\n", "line 1: expected a joint file"),
        ("video_09.avi 2\n", "line 1: video 'video_09' not found"),
        ("video_00.avi 1\n", r"found 1 line\(s\) but no test video"),
        ("\n\n", "found no lines"),
    ],
)
def test_read_split_errors_name_file_and_line(tiny_jhmdb: Path, tmp_path: Path, text: str, match: str) -> None:
    split = _write_split(tmp_path / "bad_split.txt", text)
    with pytest.raises(JhmdbFormatError, match=match) as info:
        read_split(tiny_jhmdb, split)
    assert str(split) in str(info.value)


def test_read_split_ambiguous_jhmdb_video(jhmdb_copy: Path, tmp_path: Path) -> None:
    shutil.copytree(jhmdb_copy / FRAMES_DIR / "demo", jhmdb_copy / FRAMES_DIR / "other")
    split = _write_split(tmp_path / "s.txt", "video_00.avi 2\n")
    with pytest.raises(JhmdbFormatError, match="ambiguous.*demo, other"):
        read_split(jhmdb_copy, split)


def test_read_split_missing_file(tiny_jhmdb: Path, tmp_path: Path) -> None:
    with pytest.raises(JhmdbFormatError, match="split file not found"):
        read_split(tiny_jhmdb, tmp_path / "nope.txt")


# ------------------------------------------------------------------------------------------- errors
def test_mat_without_pos_img_lists_variables(jhmdb_copy: Path) -> None:
    scipy.io.savemat(mat_path(jhmdb_copy, VIDEO), {"pos_world": np.zeros((2, 15, N_FRAMES)), "scale": 1.0})
    with pytest.raises(JhmdbFormatError, match=r"expected a variable 'pos_img'.*found pos_world, scale") as info:
        load_video(jhmdb_copy, VIDEO)
    assert str(mat_path(jhmdb_copy, VIDEO)) in str(info.value)


def test_frame_count_mismatch_names_mat_and_folder(jhmdb_copy: Path) -> None:
    (frame_folder(jhmdb_copy, VIDEO) / f"{N_FRAMES:05d}.png").unlink()
    with pytest.raises(JhmdbFormatError) as info:
        load_video(jhmdb_copy, VIDEO)
    message = str(info.value)
    assert str(mat_path(jhmdb_copy, VIDEO)) in message and str(frame_folder(jhmdb_copy, VIDEO)) in message
    assert f"({N_FRAMES - 1} PNG frames)" in message and f"T = {N_FRAMES}" in message


def test_missing_frame_folder(tiny_jhmdb: Path) -> None:
    with pytest.raises(JhmdbFormatError, match="frame folder not found") as info:
        load_video(tiny_jhmdb, "demo/video_99")
    assert str(frame_folder(tiny_jhmdb, "demo/video_99")) in str(info.value)


def test_no_frames(jhmdb_copy: Path) -> None:
    for png in frame_folder(jhmdb_copy, VIDEO).glob("*.png"):
        png.unlink()
    with pytest.raises(JhmdbFormatError, match=r"expected PNG frames \(00001.png ...\), found none"):
        load_video(jhmdb_copy, VIDEO)


def test_non_numeric_frame_name(jhmdb_copy: Path) -> None:
    shutil.copy(frame_folder(jhmdb_copy, VIDEO) / "00001.png", frame_folder(jhmdb_copy, VIDEO) / "cover.png")
    with pytest.raises(JhmdbFormatError, match="cover.png.*expected a numbered frame"):
        load_video(jhmdb_copy, VIDEO)


def test_missing_mat(jhmdb_copy: Path) -> None:
    mat_path(jhmdb_copy, VIDEO).unlink()
    with pytest.raises(JhmdbFormatError, match="joint positions not found"):
        load_video(jhmdb_copy, VIDEO)


def test_unreadable_mat(jhmdb_copy: Path) -> None:
    mat_path(jhmdb_copy, VIDEO).write_bytes(b"not a mat file at all")
    with pytest.raises(JhmdbFormatError, match="expected a readable MATLAB 5 .mat file"):
        load_video(jhmdb_copy, VIDEO)


@pytest.mark.parametrize(
    ("pos_img", "match"),
    [
        (np.zeros((2, 14, N_FRAMES)), r"shape \(2, 15, T\).*found shape \(2, 14, 5\)"),
        (np.zeros((3, 15, N_FRAMES)), r"found shape \(3, 15, 5\)"),
        (np.full((2, 15, N_FRAMES), np.nan), "expected finite joint positions"),
        (np.array(["abc"]), "expected pos_img of shape"),
    ],
)
def test_bad_pos_img(jhmdb_copy: Path, pos_img: np.ndarray, match: str) -> None:
    scipy.io.savemat(mat_path(jhmdb_copy, VIDEO), {"pos_img": pos_img})
    with pytest.raises(JhmdbFormatError, match=match):
        read_pos_img(mat_path(jhmdb_copy, VIDEO))


def test_unreadable_first_frame(jhmdb_copy: Path) -> None:
    (frame_folder(jhmdb_copy, VIDEO) / "00001.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(JhmdbFormatError, match="00001.png: expected a readable PNG frame"):
        load_video(jhmdb_copy, VIDEO)


def test_iter_frames_checks_each_frame_size(jhmdb_copy: Path) -> None:
    video = load_video(jhmdb_copy, VIDEO)
    Image.new("RGB", (10, 10)).save(video.frame_paths[2])
    frames = iter_frames(video)
    next(frames), next(frames)
    with pytest.raises(JhmdbFormatError, match=r"00003.png: expected frame size \(H, W\) = \(48, 64\)"):
        next(frames)


def test_greyscale_frames_are_read_as_rgb(jhmdb_copy: Path) -> None:
    video = load_video(jhmdb_copy, VIDEO)
    Image.open(video.frame_paths[0]).convert("L").save(video.frame_paths[0])
    frame = next(iter_frames(load_video(jhmdb_copy, VIDEO)))
    assert frame.shape == (48, 64, 3) and (frame[..., 0] == frame[..., 1]).all()
