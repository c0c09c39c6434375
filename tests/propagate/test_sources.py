"""Frame sources of ``sfc propagate``: video files through PyAV, folders of frames, and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sfc.propagate import PropagateInputError, open_frames
from tests.propagate.conftest import CLIP_FRAMES, CLIP_SIZE


def test_video_file_is_decoded_frame_by_frame(clip: tuple[np.ndarray, np.ndarray], clip_mp4: Path) -> None:
    src = open_frames(clip_mp4)
    assert (src.kind, src.size, src.num_frames) == ("video", CLIP_SIZE, CLIP_FRAMES)
    assert src.fps == pytest.approx(10.0)
    got = list(src.iter_frames())
    assert [i for i, _ in got] == list(range(CLIP_FRAMES))
    # near-lossless H.264: the decoded frames are close to the generated ones
    err = np.abs(np.stack([f for _, f in got]).astype(int) - clip[0].astype(int)).mean()
    assert err < 4.0, err


def test_wanted_and_limit(clip_mp4: Path, clip_dir: Path) -> None:
    for path in (clip_mp4, clip_dir / "frames"):
        src = open_frames(path)
        assert [i for i, _ in src.iter_frames(wanted=lambda i: i == 0 or i >= 9, limit=12)] == [0, 9, 10, 11]


def test_folder_frames_sort_numerically_and_jpeg_wins_over_png(tmp_path: Path, clip_dir: Path) -> None:
    src = open_frames(clip_dir / "frames")
    assert [p.name for p in src.files[:3]] == ["0.png", "1.png", "2.png"]
    assert src.files[10].name == "10.png"  # not after 1.png
    # JPEG frames with PNG masks beside them: the PNGs are ignored
    folder = tmp_path / "mixed"
    folder.mkdir()
    for t in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{t:05d}.jpg")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "00000.png")
    (folder / ".hidden.jpg").write_text("x")
    assert [p.name for p in open_frames(folder).files] == ["00000.jpg", "00001.jpg", "00002.jpg"]


def test_content_hash_follows_content_not_path(tmp_path: Path, clip_mp4: Path, clip_dir: Path) -> None:
    copy = shutil.copy(clip_mp4, tmp_path / "moved.mp4")
    assert open_frames(copy).sha256() == open_frames(clip_mp4).sha256()
    folder = shutil.copytree(clip_dir / "frames", tmp_path / "frames")
    assert open_frames(folder).sha256() == open_frames(clip_dir / "frames").sha256()
    Image.fromarray(np.zeros((*CLIP_SIZE, 3), np.uint8)).save(Path(folder) / "3.png")
    assert open_frames(folder).sha256() != open_frames(clip_dir / "frames").sha256()


def _empty_avi(path: Path) -> Path:
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    return path


def test_bad_inputs(tmp_path: Path, clip_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4: video file or frame folder not found"):
        open_frames(tmp_path / "nope.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(PropagateInputError, match=r"text\.mp4: expected a video file .* found a file it cannot open"):
        open_frames(tmp_path / "text.mp4")
    with pytest.raises(PropagateInputError, match=r"empty\.avi: expected at least one video frame, found none"):
        open_frames(_empty_avi(tmp_path / "empty.avi"))
    with pytest.raises(PropagateInputError, match=r"0\.png: expected a video file or a folder of frames, found a single image"):
        open_frames(clip_dir / "frames" / "0.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PropagateInputError, match=r"empty: expected frames \(\*\.jpg, \*\.jpeg, \*\.png\) in the folder, found an empty folder"):
        open_frames(tmp_path / "empty")


def test_frame_of_another_size_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "0.png")
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(folder / "1.png")
    with pytest.raises(PropagateInputError, match=r"1\.png: expected the first frame's size 8x8 \(W x H\), found 10x8"):
        list(open_frames(folder).iter_frames())
