"""Fixtures of the ``sfc propagate`` tests: a small generated clip as PNG frames, as an MP4 and its masks.

The clip is a demo sequence (:func:`sfc.data.demo.render_demo_sequence`: textured objects moving over a
panning background) of 14 frames of 48 x 64 pixels; the networks are randomly initialised ResNet-18s, so
every run takes well under a second of compute.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sfc.data.demo import render_demo_sequence
from sfc.evaluation.davis.reader import write_mask

CLIP_FRAMES = 14
CLIP_SIZE = (48, 64)  # (H, W)


def write_video(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Encode (T, H, W, 3) uint8 frames as a near-lossless H.264 MP4 (MPEG-4 part 2 without libx264)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def clip() -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, masks (T, H, W) uint8 object ids) of the generated clip."""
    frames, masks, _ = render_demo_sequence(0, 0, CLIP_FRAMES, CLIP_SIZE)
    return frames, masks


@pytest.fixture(scope="session")
def clip_dir(clip: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of lossless PNG frames ``0.png .. 13.png`` (numeric order, not lexicographic) and the first mask."""
    root = tmp_path_factory.mktemp("clip")
    frames_dir = root / "frames"
    frames_dir.mkdir()
    for t, frame in enumerate(clip[0]):
        Image.fromarray(frame).save(frames_dir / f"{t}.png")
    write_mask(root / "first.png", clip[1][0])
    return root


@pytest.fixture(scope="session")
def clip_mp4(clip: tuple[np.ndarray, np.ndarray], clip_dir: Path) -> Path:
    """The clip as an MP4 file."""
    return write_video(clip_dir / "clip.mp4", clip[0])
