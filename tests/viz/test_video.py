"""Animated GIFs of label maps over frames: frame count, size, atomic writes, streaming."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfc.evaluation.davis.reader import DAVIS_PALETTE
from sfc.viz.overlay import PART_PALETTE, overlay
from sfc.viz.video import OverlayVideo, fit_size, write_gif, write_mask_gif


def _video(n: int, hw: tuple[int, int] = (30, 50), seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` distinct frames (Pillow merges identical consecutive ones) and their label maps."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]
    masks = [np.zeros(hw, dtype=np.uint8) for _ in range(n)]
    for t, m in enumerate(masks):
        m[5:15, 5 + 2 * t : 20 + 2 * t] = 1 + t % 2
    return frames, masks


def _read(path: Path) -> tuple[int, tuple[int, int], list[int]]:
    with Image.open(path) as im:
        durations = []
        for t in range(im.n_frames):
            im.seek(t)
            durations.append(im.info["duration"])
        return im.n_frames, im.size, durations


@pytest.mark.parametrize(
    ("hw", "max_side", "expected_wh"),
    [((30, 50), 480, (50, 30)), ((30, 50), 25, (25, 15)), ((100, 40), 50, (20, 50)), ((30, 50), None, (50, 30))],
)
@pytest.mark.parametrize("n", [1, 2, 7])
def test_mask_gif_frames_and_size(
    tmp_path: Path, n: int, hw: tuple[int, int], max_side: int | None, expected_wh: tuple[int, int]
) -> None:
    frames, masks = _video(n, hw)
    path = tmp_path / "sub" / "video.gif"
    assert write_mask_gif(path, iter(frames), iter(masks), DAVIS_PALETTE, fps=5, max_side=max_side) == n
    count, size, durations = _read(path)
    assert (count, size) == (n, expected_wh)
    assert max(size) <= (max_side or max(hw))
    assert durations == [200] * n
    assert [p.name for p in path.parent.iterdir()] == ["video.gif"]  # no temporary left


def test_gif_shows_the_overlay(tmp_path: Path) -> None:
    frame = np.full((20, 30, 3), 200, dtype=np.uint8)
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[:, 15:] = 2
    write_mask_gif(tmp_path / "a.gif", [frame, frame // 2], [mask, mask], PART_PALETTE, max_side=None)
    with Image.open(tmp_path / "a.gif") as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    expected = overlay(frame, mask, palette=PART_PALETTE).astype(int)
    assert np.abs(rgb - expected).max() <= 8  # GIF palettes are 256 colours


def test_frames_are_streamed(tmp_path: Path) -> None:
    frames, masks = _video(5)
    consumed: list[int] = []

    def stream() -> Iterator[np.ndarray]:
        for t, f in enumerate(frames):
            consumed.append(t)
            yield f

    video = OverlayVideo(lambda: zip(stream(), masks, strict=True))
    assert consumed == []  # nothing read before writing
    assert write_gif(tmp_path / "v.gif", video, max_side=None) == 5
    assert consumed == [0, 1, 2, 3, 4]


def test_overlay_video_is_lazy_and_deep_copyable(tmp_path: Path) -> None:
    frames, masks = _video(3)
    calls: list[int] = []

    def pairs(tag: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        calls.append(tag)
        yield from zip(frames, masks, strict=True)

    video = OverlayVideo(functools.partial(pairs, 7), palette=PART_PALETTE, alpha=0.3)
    copied = copy.deepcopy(video)  # what a Kedro MemoryDataset does with a node output
    assert calls == []
    out = list(copied)
    assert calls == [7] and len(out) == 3
    np.testing.assert_array_equal(out[1], overlay(frames[1], masks[1], alpha=0.3, palette=PART_PALETTE))
    assert len(list(video)) == 3  # re-iterable: the stream is reopened


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    frames, masks = _video(3)
    path = tmp_path / "v.gif"
    write_mask_gif(path, frames, masks)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="frame 2"):
        write_gif(path, [frames[0], frames[1], frames[2][:10]])
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        write_gif(path, [frames[0], frames[1].astype(np.float32)])
    with pytest.raises(ValueError):  # masks and frames of different counts
        write_mask_gif(path, frames, masks[:2])
    with pytest.raises(ValueError, match="at least one frame"):
        write_gif(path, [])
    with pytest.raises(ValueError, match="fps"):
        write_gif(path, frames, fps=0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.gif"]


@pytest.mark.parametrize(
    ("hw", "max_side", "out"),
    [((480, 854), 480, (270, 480)), ((480, 854), 1000, (480, 854)), ((3, 1000), 10, (1, 10)), ((5, 5), None, (5, 5))],
)
def test_fit_size(hw: tuple[int, int], max_side: int | None, out: tuple[int, int]) -> None:
    assert fit_size(hw, max_side) == out
