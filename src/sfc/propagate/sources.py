"""Frame sources of ``sfc propagate``: a video file (decoded with PyAV) or a folder of frames.

Both are read one frame at a time, in order, each time they are iterated: nothing holds the frames
of a whole video. :func:`open_frames` checks the input up front (the file exists, is a video FFmpeg
decodes with at least one frame, or a folder that holds frames of one size) and reads the frame
size from the first frame, so that the first-frame mask can be checked against it before any long
work.

Folders: ``*.jpg`` / ``*.jpeg`` frames, or ``*.png`` frames when the folder holds no JPEG (PNGs next
to JPEG frames are taken for masks, as in the benchmarks' layouts), sorted as
:func:`sfc.data.images.sort_stems` sorts (numerically when every stem is made of digits). Hidden
files are ignored.

Videos: the first video stream, every decoded frame in presentation order, converted to RGB.
Rotation metadata of phone videos is not applied (frames come as stored).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from sfc.data.images import read_rgb, sort_stems
from sfc.propagate.errors import PropagateInputError

logger = logging.getLogger(__name__)

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "FrameSource", "open_frames"]

PathLike = str | os.PathLike[str]

#: Video file suffixes (lower case) read with PyAV.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".mpg", ".mpeg", ".ts")
#: Frame file suffixes of a folder, in order of preference (JPEG frames first, else PNG frames).
FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
_JPEG = (".jpg", ".jpeg")
_IMAGE_SUFFIXES = (*FRAME_SUFFIXES, ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FrameSource:
    """A checked video file or frame folder, read lazily by :meth:`iter_frames`.

    Attributes:
        path: the video file or the folder.
        kind: ``video`` or ``folder``.
        size: (H, W) of every frame (from the first frame; a frame of another size is an error).
        fps: frames per second of a video (its average rate), None when unknown or for a folder.
        num_frames: number of frames when known up front (folders; videos whose container says it),
            else None.
        files: the frame files of a folder, in order (empty for a video).
    """

    path: Path
    kind: Literal["video", "folder"]
    size: tuple[int, int]
    fps: float | None
    num_frames: int | None
    files: tuple[Path, ...] = ()

    def iter_frames(
        self, *, wanted: Callable[[int], bool] | None = None, limit: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, (H, W, 3) uint8 RGB frame)`` in order, one frame in memory at a time.

        Args:
            wanted: only frames whose index it accepts are yielded (a folder does not read the
                others; a video decodes them but skips the RGB conversion). None = every frame.
            limit: stop before frame ``limit`` (``--max-frames``); None = to the end.

        Raises:
            PropagateInputError: a frame that cannot be read or decoded, or whose size differs from
                the first frame's; the message names the file and the frame.
        """
        if self.kind == "folder":
            files = self.files if limit is None else self.files[:limit]
            for i, path in enumerate(files):
                if wanted is not None and not wanted(i):
                    continue
                frame = read_rgb(path, error=PropagateInputError, what="frame image")
                self._check_size(frame, f"{path}")
                yield i, frame
            return
        yield from self._iter_video(wanted, limit)

    def _iter_video(self, wanted: Callable[[int], bool] | None, limit: int | None) -> Iterator[tuple[int, np.ndarray]]:
        import av  # PyAV: only when a video is read

        container = _open_container(self.path)
        i = 0
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's frame/slice threads
            decoded = container.decode(stream)
            while limit is None or i < limit:
                try:
                    frame = next(decoded, None)
                except (av.FFmpegError, OSError, EOFError) as exc:
                    raise PropagateInputError(f"{self.path}: decoding failed at frame {i} ({exc})") from exc
                if frame is None:
                    break
                if wanted is None or wanted(i):
                    rgb = frame.to_ndarray(format="rgb24")
                    self._check_size(rgb, f"{self.path}: frame {i}")
                    yield i, rgb
                i += 1

    def _check_size(self, frame: np.ndarray, where: str) -> None:
        if tuple(frame.shape[:2]) != self.size:
            raise PropagateInputError(
                f"{where}: expected the first frame's size {self.size[1]}x{self.size[0]} (W x H), "
                f"found {frame.shape[1]}x{frame.shape[0]}"
            )

    def sha256(self) -> str:
        """SHA-256 of the input's content: the video file's bytes, or every frame file's name and bytes."""
        h = hashlib.sha256()
        for path in (self.path,) if self.kind == "video" else self.files:
            if self.kind == "folder":
                h.update(path.name.encode() + b"\0")
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()

    def describe(self) -> str:
        """``video clip.mp4, 1280x720, 30 fps, 287 frames`` (for logs)."""
        n = "unknown number of" if self.num_frames is None else str(self.num_frames)
        fps = f", {self.fps:.3g} fps" if self.fps else ""
        return f"{self.kind} {self.path}, {self.size[1]}x{self.size[0]}{fps}, {n} frames"


def _open_container(path: Path):  # noqa: ANN202 (av.container.InputContainer, imported lazily)
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise PropagateInputError(
            f"{path}: expected a video file ({', '.join(VIDEO_SUFFIXES)}) that FFmpeg can read, "
            f"found a file it cannot open ({exc})"
        ) from exc
    if not container.streams.video:
        kinds = sorted({str(s.type) for s in container.streams})
        container.close()
        found = f"only streams of type {', '.join(kinds)}" if kinds else "no stream at all (an empty video)"
        raise PropagateInputError(f"{path}: expected a video stream with at least one frame, found {found}")
    return container


def _probe_video(path: Path) -> FrameSource:
    import av

    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except (av.FFmpegError, OSError, EOFError) as exc:
            raise PropagateInputError(f"{path}: cannot decode the first video frame ({exc})") from exc
        if first is None:
            raise PropagateInputError(f"{path}: expected at least one video frame, found none")
        fps = float(stream.average_rate) if stream.average_rate else None
        count = int(stream.frames) if stream.frames else None
        return FrameSource(path, "video", (int(first.height), int(first.width)), fps, count)


def _probe_folder(folder: Path) -> FrameSource:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    jpegs = [p for p in files if p.suffix.lower() in _JPEG]
    pngs = [p for p in files if p.suffix.lower() == ".png"]
    chosen = jpegs or pngs
    if not chosen:
        found = f"{len(files)} other file(s), e.g. {sorted(files)[0].name}" if files else "an empty folder"
        raise PropagateInputError(
            f"{folder}: expected frames ({', '.join('*' + s for s in FRAME_SUFFIXES)}) in the folder, found {found}"
        )
    if jpegs and pngs:
        logger.info("%s: %d JPEG frames; %d PNG file(s) beside them ignored (taken for masks)", folder, len(jpegs), len(pngs))
    by_stem: dict[str, Path] = {}
    for p in chosen:
        if p.stem in by_stem:
            raise PropagateInputError(f"{folder}: expected one frame file per name, found {by_stem[p.stem].name} and {p.name}")
        by_stem[p.stem] = p
    ordered = tuple(by_stem[s] for s in sort_stems(list(by_stem)))
    first = read_rgb(ordered[0], error=PropagateInputError, what="frame image")
    return FrameSource(folder, "folder", (int(first.shape[0]), int(first.shape[1])), None, len(ordered), ordered)


def open_frames(path: PathLike) -> FrameSource:
    """Check a video file or frame folder and read its frame size.

    Args:
        path: a video file (``.mp4 .mov .avi .webm .mkv ...``) or a folder of frames.

    Returns:
        The :class:`FrameSource`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PropagateInputError: an image file instead of a video or folder, a file FFmpeg cannot open,
            no video stream or no frame, a folder without frames, or an unreadable first frame.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: video file or frame folder not found")
    if path.is_dir():
        src = _probe_folder(path)
    elif path.suffix.lower() in _IMAGE_SUFFIXES:
        raise PropagateInputError(
            f"{path}: expected a video file or a folder of frames, found a single image "
            f"(give the folder that holds the frames)"
        )
    else:
        src = _probe_video(path)
    logger.info("Frames: %s", src.describe())
    return src
