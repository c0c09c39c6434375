"""Animated GIFs of predicted label maps blended over their frames (for reports and MLflow).

Frames are streamed: :class:`OverlayVideo` reads, blends and yields one frame at a time, and
:func:`write_gif` downscales each frame as it arrives. Pillow's GIF encoder then keeps every frame it
was given, palettised (one byte per pixel of the downscaled frame), until the end of the file, because
it writes each frame as its difference to the previous one: memory is ``T x H' x W'`` bytes, not the
``T x H x W x 3`` of the decoded video. Pillow merges identical consecutive frames into one longer
frame (the timing is kept), so a GIF may hold fewer frames than were given.

No Kedro or MLflow here; :class:`sfc.datasets.gif_folder.GifFolderDataset` writes a folder of them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sfc.atomic import atomic_path
from sfc.evaluation.davis.reader import DAVIS_PALETTE
from sfc.viz.overlay import overlay

logger = logging.getLogger(__name__)

__all__ = ["OverlayVideo", "fit_size", "write_gif", "write_mask_gif"]

PathLike = str | os.PathLike[str]


def fit_size(hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(H, W) scaled down (aspect kept, rounded, at least 1) so that its larger side is <= ``max_side``.

    Args:
        hw: (H, W) of a frame.
        max_side: the largest allowed side in pixels; None keeps the size.

    Returns:
        (H', W'), equal to ``hw`` when it already fits (frames are never enlarged).

    Raises:
        ValueError: ``max_side < 1``.
    """
    h, w = int(hw[0]), int(hw[1])
    if max_side is None or max(h, w) <= max_side:
        return h, w
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1 pixel (or None), got {max_side}")
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


@dataclass(frozen=True)
class OverlayVideo:
    """A video of label maps blended over its frames, read lazily each time it is iterated.

    Holds only a function that opens the ``(frame, mask)`` stream (e.g. a ``functools.partial`` of a
    benchmark's ``iter_result_frames``), so it can be handed between Kedro nodes and datasets (and
    deep-copied by a ``MemoryDataset``) before any frame is read.

    Attributes:
        pairs: called once per iteration; returns ``((H, W, 3) uint8 RGB frame, (H, W) uint8 ids)``
            pairs in temporal order.
        palette: (256, 3) uint8 id -> colour (DAVIS objects, or
            :data:`sfc.viz.overlay.PART_PALETTE` for human parts).
        alpha: opacity of the label colours (background id 0 is left untouched).
    """

    pairs: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
    palette: np.ndarray = field(default_factory=lambda: DAVIS_PALETTE)
    alpha: float = 0.5

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield the blended (H, W, 3) uint8 RGB frames, one at a time."""
        for frame, mask in self.pairs():
            yield overlay(frame, mask, alpha=self.alpha, palette=self.palette)


def _as_image(frame: np.ndarray, index: int, size_hw: tuple[int, int] | None) -> Image.Image:
    """One (H, W, 3) uint8 frame as a PIL image resized to ``size_hw`` (None: as is)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index}: expected an (H, W, 3) uint8 RGB array, found shape {frame.shape}, dtype {frame.dtype}"
        )
    img = Image.fromarray(frame)
    if size_hw is not None and (img.height, img.width) != size_hw:
        img = img.resize((size_hw[1], size_hw[0]), Image.Resampling.LANCZOS)
    return img


def write_gif(
    path: PathLike, frames: Iterable[np.ndarray], *, fps: float = 10.0, max_side: int | None = 480, loop: int = 0
) -> int:
    """Write RGB frames as an animated GIF, atomically (temporary file, then rename).

    Args:
        path: the ``.gif`` file (parent folders are created).
        frames: (H, W, 3) uint8 RGB frames of one size, first frame first; consumed lazily.
        fps: frames per second (the GIF stores durations in milliseconds, rounded; at least 10 ms).
        max_side: downscale (aspect kept, Lanczos) so that the larger side is <= ``max_side``
            pixels; None keeps the frames' size.
        loop: how many times viewers repeat the animation (0 = forever).

    Returns:
        The number of frames consumed.

    Raises:
        ValueError: no frame, a frame that is not (H, W, 3) uint8, frames of different sizes,
            ``fps <= 0`` or ``max_side < 1``. ``path`` is then left untouched.
    """
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        raise ValueError(f"{path}: expected at least one frame to write a GIF, found none") from None
    if first.ndim != 3:
        raise ValueError(f"frame 0: expected an (H, W, 3) uint8 RGB array, found shape {first.shape}")
    src_hw = (int(first.shape[0]), int(first.shape[1]))
    out_hw = fit_size(src_hw, max_side)
    count = 1

    def rest() -> Iterator[Image.Image]:
        nonlocal count
        for frame in it:
            frame = np.asarray(frame)
            if frame.shape[:2] != src_hw:
                raise ValueError(f"frame {count}: expected the first frame's size (H, W) = {src_hw}, found {frame.shape[:2]}")
            count += 1
            yield _as_image(frame, count - 1, out_hw)

    duration = max(10, round(1000.0 / fps))
    with atomic_path(path) as tmp:
        _as_image(first, 0, out_hw).save(
            tmp, format="GIF", save_all=True, append_images=rest(), duration=duration, loop=loop
        )
    logger.debug("Wrote %s: %d frames, %dx%d, %g fps", path, count, out_hw[1], out_hw[0], fps)
    return count


def write_mask_gif(
    path: PathLike,
    frames: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    palette: np.ndarray = DAVIS_PALETTE,
    fps: float = 10.0,
    max_side: int | None = 480,
    *,
    alpha: float = 0.5,
) -> int:
    """Write predicted label maps blended over their frames as an animated GIF, atomically.

    Blending is :func:`sfc.viz.overlay.overlay` (label colours at ``alpha``, background untouched).

    Args:
        path: the ``.gif`` file.
        frames: (H, W, 3) uint8 RGB frames, consumed lazily.
        masks: (H, W) uint8 label maps (object or part ids), one per frame.
        palette: (256, 3) uint8 id -> colour (default: DAVIS objects).
        fps: frames per second.
        max_side: the larger side of the GIF is at most this many pixels (None: native size).
        alpha: opacity of the label colours.

    Returns:
        The number of frames written.

    Raises:
        ValueError: as :func:`write_gif`; also frames and masks of different counts or sizes.
    """
    video = OverlayVideo(lambda: zip(frames, masks, strict=True), palette=palette, alpha=alpha)
    return write_gif(Path(path), video, fps=fps, max_side=max_side)
