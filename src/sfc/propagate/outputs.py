"""Overlay videos of ``sfc propagate``: the animated GIF (:mod:`sfc.viz.video`) or an H.264 MP4 (PyAV).

Both take a lazily read stream of (frame, mask) pairs and blend the masks over the frames with
:func:`sfc.viz.overlay.overlay` (DAVIS colours, alpha 0.5). The MP4 is encoded frame by frame
(memory flat in the video length); the GIF keeps every palettised frame until the file is written
(Pillow's encoder; ``H' x W'`` bytes per frame at the GIF's size, see :mod:`sfc.viz.video`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from sfc.atomic import atomic_path
from sfc.viz.video import OverlayVideo, write_gif

logger = logging.getLogger(__name__)

__all__ = ["GIF_MAX_SIDE", "MP4_CRF", "mp4_available", "write_overlay"]

PathLike = str | os.PathLike[str]

#: The GIF's larger side in pixels (frames are downscaled; GIFs of full-HD frames are huge and slow).
GIF_MAX_SIDE = 480
#: x264 constant rate factor of the MP4 overlay (18: visually lossless for most content).
MP4_CRF = 18
MP4_CODEC = "libx264"


def mp4_available() -> bool:
    """Whether this PyAV build has the libx264 encoder."""
    import av

    return MP4_CODEC in av.codecs_available


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 (yuv420p) in an MP4, atomically; return the count.

    Odd frame sizes are padded by one edge-replicated row/column (yuv420p needs even sizes).
    """
    import av

    count = 0
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = None
            pad = (0, 0)
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    pad = (h % 2, w % 2)
                    stream = container.add_stream(MP4_CODEC, rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height = w + pad[1], h + pad[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(MP4_CRF)}
                if pad != (0, 0):
                    frame = np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"{path}: expected at least one frame to write an MP4, found none")
            for packet in stream.encode():  # flush the encoder
                container.mux(packet)
        finally:
            container.close()
    return count


def write_overlay(
    path: PathLike, pairs: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], *, kind: str, fps: float | None
) -> int:
    """Write masks blended over their frames as ``overlay.gif`` or ``overlay.mp4``, atomically.

    Args:
        path: the output file.
        pairs: opens the stream of ``((H, W, 3) uint8 RGB frame, (H, W) uint8 ids)`` pairs.
        kind: ``gif`` (at most :data:`GIF_MAX_SIDE` pixels on the larger side) or ``mp4`` (full size).
        fps: the video's frame rate; None = 10 frames/s.

    Returns:
        Frames written.
    """
    video = OverlayVideo(pairs)
    rate = fps if fps and fps > 0 else 10.0
    if kind == "gif":
        n = write_gif(path, video, fps=rate, max_side=GIF_MAX_SIDE)
    elif kind == "mp4":
        n = _write_mp4(Path(path), video, rate)
    else:
        raise ValueError(f"overlay kind must be 'gif' or 'mp4', got {kind!r}")
    logger.info("Wrote %s (%d frames, %.3g frames/s)", path, n, rate)
    return n
