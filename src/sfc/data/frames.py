"""Frame sources for FC training: scan image datasets and videos into one frame index.

The fine-grained correspondence (FC) network is trained on single frames, so every source is
reduced to the same table, one row per frame (:data:`INDEX_COLUMNS`)::

    path      absolute path of a JPEG readable by PIL (decoded video frames included)
    source    the layout that produced the row: ytvos | coco | davis | folder | video
    video     video / sequence name (see below); frames of one video share it
    frame     integer index within the video
    width, height   image size in pixels (from the JPEG header, checked by a full decode)
    size, mtime_ns  the file's size and modification time when it was scanned (cache key)
    verified  True if the image was fully decoded once (``verify=True``)

Layouts (``kind``) and what is searched (``extensions`` default to ``.jpg``/``.jpeg``; PNGs in these
datasets are annotation masks, not frames)::

    ytvos   <root>/train_all_frames/JPEGImages/<video>/*.jpg, or <root>/JPEGImages/<video>/*.jpg next
            to the ``ytvos.csv`` of the CRW/MAST/UVC loaders (no header; ``video,start_frame,n_frames``
            per line). With a csv only the listed videos are indexed; a listed video without a
            folder is a reject.
    coco    <root>/train2017/*.jpg; every image is its own one-frame "video" named by its image id.
    davis   <root>/JPEGImages/480p/<video>/*.jpg (480p is preferred over Full-Resolution), or
            <root>/JPEGImages/<video>/*.jpg (e.g. YouTube-VOS ``train/`` without csv).
    folder  any image under <root> (recursive); video = the folder holding the image, relative to
            <root> ("." -> the root's own name).
    videos  any video file under <root> (``.mp4 .mov .avi .webm .mkv``), decoded at ``fps`` into
            ``<output_dir>/<relative path without suffix>/00000.jpg ...``; video = that relative path.
    mixed   ``folder`` + ``videos`` in one tree: each file is treated by its own kind.

:func:`detect_kind` applies these rules in the order above (``kind="auto"``); the first rules only
look at folder names, so auto-detection on a 600k-frame YouTube-VOS tree costs nothing.

``frame`` is the file stem as an integer when every stem of the video is made of digits
(``00035.jpg`` -> 35), else the position in the sorted file names. For decoded videos it is the
position of the kept frame (0, 1, 2, ...).

Failures never stop a run: an unreadable or truncated image, an undecodable video, a sequence folder
holding no image, or a video listed in ``ytvos.csv`` but absent all become rows of the rejects table
(:data:`REJECT_COLUMNS`) with the reason. Only a run that finds no frame at all raises
:class:`FrameIndexError` (naming the root and the patterns searched), as does a root that does not
exist or an explicit ``kind`` whose layout is not there.

Incremental runs: pass the previous index (and rejects) back in. A file whose ``(size, mtime_ns)``
did not change keeps its row (or its rejection) without being opened; a video whose decoded-frames
folder holds a marker with the same source ``(size, mtime_ns)`` and decode settings is not decoded
again. A rerun over unchanged inputs therefore only walks the tree and calls ``stat``.

No Kedro or MLflow here: this module is the library; ``sfc.pipelines.extract_frames`` wires it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "DECODE_MARKER",
    "IMAGE_EXTENSIONS",
    "INDEX_COLUMNS",
    "KINDS",
    "REJECT_COLUMNS",
    "VIDEO_EXTENSIONS",
    "DecodedVideo",
    "FrameIndex",
    "FrameIndexError",
    "VideoDecodeError",
    "build_frame_index",
    "decode_video",
    "detect_kind",
    "empty_index",
    "empty_rejects",
    "kind_patterns",
    "probe_image",
]

PathLike = str | os.PathLike[str]

#: Layouts understood by :func:`build_frame_index` (``"auto"`` picks one with :func:`detect_kind`).
KINDS: tuple[str, ...] = ("ytvos", "coco", "davis", "folder", "videos", "mixed")
#: Default image extensions (lower case). PNGs are left out on purpose: in VOS datasets they are masks.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg")
#: Default video extensions (lower case).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".avi", ".webm", ".mkv")
#: Columns of the frame index, in order.
INDEX_COLUMNS: tuple[str, ...] = (
    "path", "source", "video", "frame", "width", "height", "size", "mtime_ns", "verified",
)
#: Columns of the rejects table; ``size``/``mtime_ns`` are null for folder-level rejects.
REJECT_COLUMNS: tuple[str, ...] = ("path", "source", "video", "reason", "size", "mtime_ns")
#: Marker written last into each decoded-video folder (hidden, so never indexed as a frame).
DECODE_MARKER = ".sfc_decode.json"
#: Name of the optional YouTube-VOS video list used by CRW/MAST/UVC loaders.
YTVOS_CSV = "ytvos.csv"

_EPS = 1e-6  # seconds; absorbs float error when frame times fall exactly on the sampling grid


class FrameIndexError(ValueError):
    """The frame root, its layout or the requested kind is wrong, or no frame was found at all."""


class VideoDecodeError(ValueError):
    """A video file cannot be decoded into frames (becomes a rejects row, never stops a run)."""


# --------------------------------------------------------------------------------------------- layout


def kind_patterns(kind: str, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                  video_extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """The glob-like patterns a kind searches, relative to the root (for messages and docs)."""
    img = "{" + ",".join(f"*{e}" for e in extensions) + "}"
    vid = "{" + ",".join(f"*{e}" for e in video_extensions) + "}"
    patterns = {
        "ytvos": [f"train_all_frames/JPEGImages/<video>/{img}", f"JPEGImages/<video>/{img} + {YTVOS_CSV}"],
        "coco": [f"train2017/{img}"],
        "davis": [f"JPEGImages/480p/<video>/{img}", f"JPEGImages/<video>/{img}"],
        "folder": [f"**/{img}"],
        "videos": [f"**/{vid}"],
        "mixed": [f"**/{img}", f"**/{vid}"],
    }
    if kind not in patterns:
        raise FrameIndexError(f"unknown frames kind {kind!r}; expected 'auto' or one of {', '.join(KINDS)}")
    return patterns[kind]


def _norm_exts(exts: Iterable[str]) -> tuple[str, ...]:
    out = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in exts)
    if not out:
        raise FrameIndexError("expected at least one file extension, found an empty list")
    return out


def _ytvos_csv(root: Path) -> Path | None:
    for candidate in (root / YTVOS_CSV, root / "train_all_frames" / YTVOS_CSV):
        if candidate.is_file():
            return candidate
    return None


def _has_subdirs(folder: Path) -> bool:
    try:
        return any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(folder))
    except OSError:
        return False


def _walk(root: Path, skip: Path | None = None) -> Iterable[tuple[Path, list[os.DirEntry[str]], list[os.DirEntry[str]]]]:
    """Walk ``root`` in sorted order: yields (folder, sub-folders, files); hidden entries skipped.

    ``skip`` (e.g. the decoded-frames folder when it lies inside the root) is not entered.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            logger.warning("%s: cannot list folder (%s); skipped", folder, exc)
            continue
        dirs = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
        files = [e for e in entries if not e.name.startswith(".") and e.is_file()]
        if skip is not None:
            dirs = [d for d in dirs if Path(d.path).resolve() != skip]
        yield folder, dirs, files
        stack.extend(Path(d.path) for d in reversed(dirs))


def detect_kind(root: PathLike, *, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                video_extensions: Sequence[str] = VIDEO_EXTENSIONS) -> str:
    """Guess the layout of a frame root.

    Rules, first match wins:

    1. ``train_all_frames/JPEGImages/`` exists, or ``JPEGImages/`` next to a ``ytvos.csv`` -> ``ytvos``
    2. ``train2017/`` exists -> ``coco``
    3. ``JPEGImages/`` exists and holds sub-folders (``480p/`` or one per video) -> ``davis``
    4. walk the tree: image files and video files -> ``mixed``; only videos -> ``videos``;
       otherwise ``folder`` (also for a tree with no frame at all: the scan then reports it).

    Args:
        root: frame root folder.
        extensions: image extensions, e.g. ``(".jpg", ".jpeg")``.
        video_extensions: video extensions, e.g. ``(".mp4",)``.

    Returns:
        One of :data:`KINDS`.

    Raises:
        FrameIndexError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FrameIndexError(f"{root}: frame root not found (expected a folder of frames or videos)")
    if (root / "train_all_frames" / "JPEGImages").is_dir():
        return "ytvos"
    if (root / "JPEGImages").is_dir() and _ytvos_csv(root) is not None:
        return "ytvos"
    if (root / "train2017").is_dir():
        return "coco"
    if (root / "JPEGImages").is_dir() and _has_subdirs(root / "JPEGImages"):
        return "davis"
    img_exts, vid_exts = _norm_exts(extensions), _norm_exts(video_extensions)
    has_images = has_videos = False
    for _, _, files in _walk(root):
        for f in files:
            suffix = os.path.splitext(f.name)[1].lower()
            has_images |= suffix in img_exts
            has_videos |= suffix in vid_exts
        if has_images and has_videos:
            return "mixed"
    return "videos" if has_videos else "folder"


def _check_kind(root: Path, kind: str, detected: Callable[[], str]) -> None:
    """Raise if an explicit layout kind is not present under ``root``."""
    required = {
        "ytvos": [root / "train_all_frames" / "JPEGImages", root / "JPEGImages"],
        "coco": [root / "train2017"],
        "davis": [root / "JPEGImages"],
    }.get(kind)
    if required is None or any(p.is_dir() for p in required):
        return
    raise FrameIndexError(
        f"{root}: frames.kind is {kind!r}, which expects {' or '.join(kind_patterns(kind))} under the "
        f"root, but {' and '.join(str(p) for p in required)} is not a folder (auto-detection says "
        f"{detected()!r}; set frames.kind to auto or fix frames.root)"
    )


# --------------------------------------------------------------------------------------------- scanning


@dataclass
class _Image:
    """One image file to index."""

    path: str
    source: str
    video: str
    stem: str
    size: int
    mtime_ns: int


@dataclass
class _Video:
    """One video file to decode."""

    path: str
    video: str
    size: int
    mtime_ns: int


@dataclass
class _Scan:
    images: list[_Image] = field(default_factory=list)
    videos: list[_Video] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def _folder_reject(scan: _Scan, folder: Path, source: str, video: str, reason: str) -> None:
    logger.warning("%s: %s; skipped", folder, reason)
    scan.rejects.append({"path": os.path.abspath(folder), "source": source, "video": video, "reason": reason,
                         "size": None, "mtime_ns": None})


def _with_ext(files: Iterable[os.DirEntry[str]], exts: tuple[str, ...]) -> list[os.DirEntry[str]]:
    return [f for f in files if os.path.splitext(f.name)[1].lower() in exts]


def _add_images(scan: _Scan, entries: Iterable[os.DirEntry[str]], source: str, video: str | None) -> None:
    for e in entries:
        try:
            st = e.stat()
        except OSError as exc:  # vanished or unreadable between listing and stat
            scan.rejects.append({"path": os.path.abspath(e.path), "source": source, "video": video or "",
                                 "reason": f"cannot stat file: {exc}", "size": None, "mtime_ns": None})
            continue
        stem = os.path.splitext(e.name)[0]
        scan.images.append(_Image(os.path.abspath(e.path), source, video if video is not None else stem,
                                  stem, st.st_size, st.st_mtime_ns))


def _no_images_reason(files: list[os.DirEntry[str]], exts: tuple[str, ...]) -> str:
    others = [f.name for f in files]
    found = f"{len(others)} other file(s), e.g. {others[0]}" if others else "the folder is empty"
    return f"no image files ({', '.join('*' + e for e in exts)}) in this folder; found {found}"


def _scan_sequences(scan: _Scan, images_root: Path, source: str, exts: tuple[str, ...],
                    only: list[str] | None = None) -> None:
    """``<images_root>/<video>/*.jpg``: one sub-folder per video."""
    try:
        names = sorted(e.name for e in os.scandir(images_root) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise FrameIndexError(f"{images_root}: cannot list frame folder ({exc})") from exc
    if only is not None:
        present = set(names)
        for name in only:
            if name not in present:
                _folder_reject(scan, images_root / name, source, name,
                               f"video listed in {YTVOS_CSV} but its folder is missing")
        keep = set(only)
        names = [n for n in names if n in keep]
    for name in names:
        folder = images_root / name
        try:
            files = sorted((e for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")),
                           key=lambda e: e.name)
        except OSError as exc:
            _folder_reject(scan, folder, source, name, f"cannot list folder: {exc}")
            continue
        images = _with_ext(files, exts)
        if not images:
            _folder_reject(scan, folder, source, name, _no_images_reason(files, exts))
            continue
        _add_images(scan, images, source, name)


def _read_ytvos_csv(path: Path) -> list[str]:
    """Video names of a ``ytvos.csv`` (``video,start_frame,n_frames`` lines, no header)."""
    names: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or not row[0].strip():
                    continue
                if lineno == 1 and row[0].strip().lower() in ("video", "name", "video_name"):
                    continue  # tolerate a header line
                names.append(row[0].strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FrameIndexError(f"{path}: cannot read the YouTube-VOS video list ({exc})") from exc
    if not names:
        raise FrameIndexError(f"{path}: expected one 'video,start_frame,n_frames' line per video, found none")
    return list(dict.fromkeys(names))


def _scan(root: Path, kind: str, img_exts: tuple[str, ...], vid_exts: tuple[str, ...],
          output_dir: Path | None) -> _Scan:
    scan = _Scan()
    if kind == "ytvos":
        images_root = root / "train_all_frames" / "JPEGImages"
        if not images_root.is_dir():
            images_root = root / "JPEGImages"
        csv_path = _ytvos_csv(root)
        only = _read_ytvos_csv(csv_path) if csv_path is not None else None
        if csv_path is not None:
            logger.info("%s: %d video(s) listed; only those are indexed", csv_path, len(only or []))
        _scan_sequences(scan, images_root, "ytvos", img_exts, only)
    elif kind == "davis":
        images_root = root / "JPEGImages" / "480p"
        if not images_root.is_dir():
            images_root = root / "JPEGImages"
        _scan_sequences(scan, images_root, "davis", img_exts)
    elif kind == "coco":
        folder = root / "train2017"
        files = sorted((e for e in os.scandir(folder) if e.is_file()), key=lambda e: e.name)
        _add_images(scan, _with_ext(files, img_exts), "coco", None)
    else:  # folder | videos | mixed: walk the tree, each file by its own kind
        want_images, want_videos = kind in ("folder", "mixed"), kind in ("videos", "mixed")
        skip = output_dir.resolve() if output_dir is not None else None
        for folder, dirs, files in _walk(root, skip=skip):
            rel = folder.relative_to(root).as_posix()
            video = root.resolve().name if rel == "." else rel
            images = _with_ext(files, img_exts) if want_images else []
            videos = _with_ext(files, vid_exts) if want_videos else []
            if images:
                _add_images(scan, images, "folder", video)
            for e in videos:
                try:
                    st = e.stat()
                except OSError as exc:  # vanished or unreadable between listing and stat
                    _folder_reject(scan, Path(e.path), "video", e.name, f"cannot stat file: {exc}")
                    continue
                rel_stem = os.path.splitext(Path(e.path).relative_to(root).as_posix())[0]
                scan.videos.append(_Video(os.path.abspath(e.path), rel_stem, st.st_size, st.st_mtime_ns))
            if want_images and not dirs and not images and not videos:
                # a leaf folder of a multi-folder tree without frames: report it, do not fail
                _folder_reject(scan, folder, "folder", video, _no_images_reason(files, img_exts))
    return scan


# --------------------------------------------------------------------------------------------- images


def probe_image(path: PathLike, *, verify: bool = True) -> tuple[int, int]:
    """Read an image's size, optionally decoding it fully to catch truncated files.

    ``verify=False`` parses the header only (~0.1 ms per file); ``verify=True`` also decodes every
    pixel (``Image.load``: ~4 ms for a 480p JPEG, ~12 ms at 1080p, per core), which is the only
    reliable way to find truncated or corrupt JPEGs before training trips on them.

    Args:
        path: image file.
        verify: fully decode the image.

    Returns:
        (width, height) in pixels.

    Raises:
        OSError, ValueError, SyntaxError, Image.DecompressionBombError: unreadable, truncated or
            zero-sized image (callers turn these into rejects).
    """
    with Image.open(path) as img:
        width, height = img.size
        if verify:
            img.load()
    if width <= 0 or height <= 0:
        raise ValueError(f"image has an empty size {width}x{height}")
    return int(width), int(height)


_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError)


def _probe(item: _Image, verify: bool) -> tuple[int, int] | str:
    try:
        return probe_image(item.path, verify=verify)
    except _IMAGE_ERRORS as exc:
        return f"unreadable or truncated image: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------- videos


@dataclass(frozen=True)
class DecodedVideo:
    """A video decoded into a folder of JPEG frames.

    Attributes:
        folder: ``<output_dir>/<video>``, holding ``00000.jpg ...`` and the marker file.
        frames: number of JPEG frames.
        width, height: frame size in pixels.
        decoded: False when the folder was reused from an earlier run (nothing decoded).
    """

    folder: Path
    frames: int
    width: int
    height: int
    decoded: bool = True

    def frame_paths(self) -> list[Path]:
        """Paths of the frames, in order."""
        return [self.folder / f"{i:05d}.jpg" for i in range(self.frames)]


def _decode_settings(fps: float | None, quality: int, max_seconds: float | None) -> dict[str, Any]:
    return {"fps": None if fps is None else float(fps), "jpeg_quality": int(quality),
            "max_seconds": None if max_seconds is None else float(max_seconds)}


def _reuse_decoded(folder: Path, source: Path, settings: dict[str, Any]) -> DecodedVideo | None:
    """The decoded folder from an earlier run, if its marker matches the source file and settings."""
    marker = folder / DECODE_MARKER
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        st = source.stat()
    except (OSError, ValueError):
        return None
    if (info.get("source_size"), info.get("source_mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return None
    if any(info.get(k) != v for k, v in settings.items()):
        return None
    out = DecodedVideo(folder, int(info["frames"]), int(info["width"]), int(info["height"]), decoded=False)
    if not all(p.is_file() for p in out.frame_paths()):
        return None
    return out


def decode_video(path: PathLike, folder: PathLike, *, fps: float | None = 6.0, jpeg_quality: int = 95,
                 max_seconds: float | None = None) -> DecodedVideo:
    """Decode a video file into ``<folder>/00000.jpg ...`` at a chosen frame rate (PyAV).

    Sampling: frame time t (seconds from the stream start) is kept when it reaches the next point of
    the grid 0, 1/fps, 2/fps, ...; so a 30 fps clip at ``fps=6`` keeps every 5th frame and ``fps`` at
    or above the native rate keeps every frame once. ``fps=None`` keeps every frame.

    Frames are written into a hidden temporary folder next to ``folder`` with a marker file
    (:data:`DECODE_MARKER`: source size/mtime and the settings) written last; the temporary folder
    then replaces ``folder``. A crash never leaves a half-written ``folder``; an existing folder with
    a matching marker is returned as is, without decoding.

    Args:
        path: video file (anything FFmpeg reads: mp4, mov, avi, webm, mkv...).
        folder: destination folder for this video's frames.
        fps: frames per second to keep (> 0), or None for all frames.
        jpeg_quality: JPEG quality of the written frames (1-95).
        max_seconds: decode only frames with t < max_seconds (smoke runs); None = whole video.

    Returns:
        The :class:`DecodedVideo`.

    Raises:
        VideoDecodeError: the file cannot be opened, has no video stream, yields no frame or fails
            while decoding.
    """
    import av  # PyAV: imported here so that indexing images never needs FFmpeg

    path, folder = Path(path), Path(folder)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0 or None, got {fps}")
    settings = _decode_settings(fps, jpeg_quality, max_seconds)
    reused = _reuse_decoded(folder, path, settings)
    if reused is not None:
        return reused
    st = path.stat()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    t0 = time.perf_counter()
    count = width = height = 0
    try:
        try:
            container = av.open(str(path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoDecodeError(f"cannot open video: {exc}") from exc
        with container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream in the file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            rate = float(stream.average_rate) if stream.average_rate else 25.0
            next_t = 0.0
            try:
                for i, frame in enumerate(container.decode(stream)):
                    t = frame.time - start if frame.time is not None else i / rate
                    if max_seconds is not None and t >= max_seconds - _EPS:
                        break
                    if fps is not None:
                        if t + _EPS < next_t:
                            continue
                        next_t = (math.floor(t * fps + _EPS) + 1) / fps
                    image = frame.to_image()  # RGB PIL image
                    image.save(tmp / f"{count:05d}.jpg", format="JPEG", quality=int(jpeg_quality))
                    width, height = image.size
                    count += 1
            except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
                raise VideoDecodeError(f"decoding failed after {count} kept frame(s): {exc}") from exc
        if count == 0:
            raise VideoDecodeError("the video yielded no frame" + (
                f" in its first {max_seconds} s" if max_seconds is not None else ""))
        seconds = time.perf_counter() - t0
        marker = {"source": str(path.resolve()), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns,
                  **settings, "frames": count, "width": width, "height": height,
                  "decode_seconds": round(seconds, 3)}
        (tmp / DECODE_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / "x")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.debug("Decoded %s: %d frame(s) %dx%d in %.2f s", path, count, width, height, seconds)
    return DecodedVideo(folder, count, width, height, decoded=True)


# --------------------------------------------------------------------------------------------- index


@dataclass
class FrameIndex:
    """Result of :func:`build_frame_index`.

    Attributes:
        index: one row per frame, columns :data:`INDEX_COLUMNS`, sorted by (video, frame, path).
        rejects: one row per rejected file or folder, columns :data:`REJECT_COLUMNS`.
        summary: counts and timings (JSON-serialisable).
    """

    index: pd.DataFrame
    rejects: pd.DataFrame
    summary: dict[str, Any]


def empty_index() -> pd.DataFrame:
    """An empty frame index with the right columns and dtypes."""
    return _index_frame([])


def empty_rejects() -> pd.DataFrame:
    """An empty rejects table with the right columns and dtypes."""
    return _rejects_frame([])


def _index_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    return df.astype({"path": str, "source": str, "video": str, "frame": "int64", "width": "int64",
                      "height": "int64", "size": "int64", "mtime_ns": "int64", "verified": bool})


def _rejects_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    # Int64 built from Python ints directly: a column mixing ints and None would pass through
    # float64 first and lose the low digits of nanosecond mtimes (then the cache never matches)
    data: dict[str, Any] = {c: pd.array([r[c] for r in rows], dtype=str) for c in ("path", "source", "video", "reason")}
    for c in ("size", "mtime_ns"):
        data[c] = pd.array([None if r[c] is None else int(r[c]) for r in rows], dtype="Int64")
    return pd.DataFrame(data, columns=list(REJECT_COLUMNS))


def _frame_numbers(stems: list[str]) -> list[int]:
    """Frame numbers of one video's stems: the integer stem when all are digits, else sorted rank."""
    if all(s.isdigit() for s in stems):
        return [int(s) for s in stems]
    rank = {s: i for i, s in enumerate(sorted(stems))}
    return [rank[s] for s in stems]


def _lookup(previous: pd.DataFrame | None, columns: Sequence[str], what: str) -> dict[str, tuple]:
    """``path -> row tuple`` from a previous table, or {} when absent or not in the expected schema."""
    if previous is None or len(previous) == 0:
        return {}
    missing = [c for c in columns if c not in previous.columns]
    if missing:
        logger.warning("Previous %s lacks column(s) %s; ignored (everything is rescanned)", what, missing)
        return {}
    prev = previous.dropna(subset=["size", "mtime_ns"])
    if len(prev) and any(pd.api.types.is_float_dtype(prev[c]) for c in ("size", "mtime_ns")):
        # float64 cannot hold nanosecond mtimes exactly: a cache read this way would never match
        logger.warning("Previous %s stores size/mtime_ns as floats; ignored (everything is rescanned)", what)
        return {}
    return {p: tuple(r) for p, *r in prev[["path", *[c for c in columns if c != "path"]]].itertuples(index=False)}


def build_frame_index(
    root: PathLike,
    kind: str,
    *,
    extensions: Sequence[str],
    video_extensions: Sequence[str],
    verify: bool,
    output_dir: PathLike,
    video_fps: float | None,
    jpeg_quality: int,
    video_max_seconds: float | None,
    workers: int | None,
    previous_index: pd.DataFrame | None = None,
    previous_rejects: pd.DataFrame | None = None,
    progress: bool | None = None,
) -> FrameIndex:
    """Scan a frame root (images and/or videos) into a frame index and a rejects table.

    The options are the ``frames.*`` parameters (:class:`sfc.config.FramesConfig`; their defaults and
    recommended values are in conf/base/parameters_extract_frames.yml).

    Args:
        root: frame root folder.
        kind: ``"auto"`` (:func:`detect_kind`) or one of :data:`KINDS`.
        previous_index: the index of an earlier run (or None): rows of unchanged files are reused.
        previous_rejects: the rejects of an earlier run (or None): unchanged rejected files are not
            reopened.
        extensions: image extensions to index.
        video_extensions: video extensions to decode (kinds ``videos`` and ``mixed``).
        verify: fully decode each new or changed image (see :func:`probe_image` for the cost).
        output_dir: where decoded video frames go, ``<output_dir>/<video>/00000.jpg``.
        video_fps: frames per second kept from videos; None keeps every frame.
        jpeg_quality: JPEG quality of decoded video frames.
        video_max_seconds: decode only the first seconds of each video (smoke runs); None = all.
        workers: threads probing images (PIL releases the GIL while decoding); None = CPU count
            (at most 16).
        progress: show tqdm bars; None = only on a terminal.

    Returns:
        A :class:`FrameIndex` (index, rejects, summary).

    Raises:
        FrameIndexError: missing root, unknown kind, an explicit kind whose layout is absent, or no
            frame found (the message names the root, the kind and the patterns searched).
    """
    t0 = time.perf_counter()
    root = Path(root)
    img_exts, vid_exts = _norm_exts(extensions), _norm_exts(video_extensions)
    if not root.is_dir():
        raise FrameIndexError(f"{root}: frame root not found (expected a folder of frames or videos)")
    requested = kind
    if kind == "auto":
        kind = detect_kind(root, extensions=img_exts, video_extensions=vid_exts)
        logger.info("%s: detected frames kind %r", root, kind)
    else:
        kind_patterns(kind)  # validates the name
        _check_kind(root, kind, lambda: detect_kind(root, extensions=img_exts, video_extensions=vid_exts))
    if video_fps is not None and not video_fps > 0:
        raise FrameIndexError(f"video_fps must be > 0 or null (every frame), got {video_fps}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise FrameIndexError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    output_dir = Path(output_dir)
    # Always there (empty for image datasets): DVC and later runs expect the declared output folder.
    output_dir.mkdir(parents=True, exist_ok=True)

    # decoded frames are outputs, not inputs: never index them back when output_dir lies in the root
    scan = _scan(root, kind, img_exts, vid_exts, output_dir if kind in ("videos", "mixed") else None)
    t_scan = time.perf_counter() - t0

    # ---- images: reuse unchanged rows, probe the rest
    cached = _lookup(previous_index, ("path", "size", "mtime_ns", "width", "height", "verified"), "frame index")
    cached_rejects = _lookup(previous_rejects, ("path", "size", "mtime_ns", "reason"), "rejects")
    sizes: dict[str, tuple[int, int, bool]] = {}
    rejects = list(scan.rejects)
    todo: list[_Image] = []
    reused = reused_rejects = 0
    for item in scan.images:
        hit = cached.get(item.path)
        if hit is not None and (int(hit[0]), int(hit[1])) == (item.size, item.mtime_ns) and (bool(hit[4]) or not verify):
            sizes[item.path] = (int(hit[2]), int(hit[3]), bool(hit[4]))
            reused += 1
            continue
        bad = cached_rejects.get(item.path)
        if bad is not None and (int(bad[0]), int(bad[1])) == (item.size, item.mtime_ns):
            rejects.append({"path": item.path, "source": item.source, "video": item.video, "reason": bad[2],
                            "size": item.size, "mtime_ns": item.mtime_ns})
            reused_rejects += 1
            continue
        todo.append(item)

    t1 = time.perf_counter()
    n_workers = max(1, min(16, os.cpu_count() or 1) if workers is None else int(workers))
    disable = None if progress is None else not progress  # tqdm: None = disabled when not a terminal
    if todo:
        bar = tqdm(total=len(todo), desc="frames: probing images", unit="img", disable=disable)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for item, result in zip(todo, pool.map(lambda it: _probe(it, verify), todo, chunksize=1)):
                bar.update(1)
                if isinstance(result, str):
                    logger.warning("%s: %s; rejected", item.path, result)
                    rejects.append({"path": item.path, "source": item.source, "video": item.video,
                                    "reason": result, "size": item.size, "mtime_ns": item.mtime_ns})
                else:
                    sizes[item.path] = (*result, verify)
        bar.close()
    t_probe = time.perf_counter() - t1

    # ---- videos: decode (or reuse the decoded folder)
    t2 = time.perf_counter()
    decoded: list[tuple[_Video, DecodedVideo]] = []
    n_decoded = n_video_reused = n_decoded_frames = 0
    vbar = tqdm(scan.videos, desc="frames: decoding videos", unit="video", disable=disable)
    for vid in vbar:
        bad = cached_rejects.get(vid.path)
        if bad is not None and (int(bad[0]), int(bad[1])) == (vid.size, vid.mtime_ns):
            rejects.append({"path": vid.path, "source": "video", "video": vid.video, "reason": bad[2],
                            "size": vid.size, "mtime_ns": vid.mtime_ns})
            reused_rejects += 1
            continue
        try:
            out = decode_video(vid.path, output_dir / vid.video, fps=video_fps, jpeg_quality=jpeg_quality,
                               max_seconds=video_max_seconds)
        except (VideoDecodeError, OSError) as exc:
            logger.warning("%s: %s; rejected", vid.path, exc)
            rejects.append({"path": vid.path, "source": "video", "video": vid.video,
                            "reason": f"undecodable video: {exc}", "size": vid.size, "mtime_ns": vid.mtime_ns})
            continue
        decoded.append((vid, out))
        if out.decoded:
            n_decoded += 1
            n_decoded_frames += out.frames
        else:
            n_video_reused += 1
    vbar.close()
    t_decode = time.perf_counter() - t2

    # ---- assemble
    rows: list[dict[str, Any]] = []
    by_video: dict[str, list[_Image]] = {}
    for item in scan.images:
        if item.path in sizes:
            by_video.setdefault(item.video, []).append(item)
    for video, items in by_video.items():
        # COCO: every image is a one-frame "video" named by its image id
        numbers = [0] * len(items) if items[0].source == "coco" else _frame_numbers([it.stem for it in items])
        for item, number in zip(items, numbers):
            w, h, ver = sizes[item.path]
            rows.append({"path": item.path, "source": item.source, "video": video, "frame": number,
                         "width": w, "height": h, "size": item.size, "mtime_ns": item.mtime_ns, "verified": ver})
    for vid, out in decoded:
        for i, p in enumerate(out.frame_paths()):
            st = p.stat()
            rows.append({"path": os.path.abspath(p), "source": "video", "video": vid.video, "frame": i,
                         "width": out.width, "height": out.height, "size": st.st_size,
                         "mtime_ns": st.st_mtime_ns, "verified": True})
    index = _index_frame(rows).sort_values(["video", "frame", "path"], kind="stable").reset_index(drop=True)
    rejects_df = _rejects_frame(rejects).sort_values(["path"], kind="stable").reset_index(drop=True)

    seconds = time.perf_counter() - t0
    if index.empty:
        shown = "; ".join(f"{r['path']}: {r['reason']}" for r in rejects[:3])
        hint = ""
        if requested != "auto":
            detected = detect_kind(root, extensions=img_exts, video_extensions=vid_exts)
            hint = f"; auto-detection says {detected!r}" if detected != kind else ""
        raise FrameIndexError(
            f"{root}: no frames found (kind {kind!r}, searched {', '.join(kind_patterns(kind, img_exts, vid_exts))})"
            + (f"; {len(rejects)} file(s)/folder(s) rejected, e.g. {shown}" if rejects else "") + hint
        )
    summary = {
        "root": str(root),
        "kind": kind,
        "frames": len(index),
        "videos": int(index["video"].nunique()),
        "frames_by_source": {k: int(v) for k, v in sorted(Counter(index["source"]).items())},
        "rejects": len(rejects_df),
        "images_scanned": len(scan.images),
        "images_probed": len(todo),
        "images_reused": reused,
        "rejects_reused": reused_rejects,
        "video_files": len(scan.videos),
        "videos_decoded": n_decoded,
        "videos_reused": n_video_reused,
        "frames_decoded": n_decoded_frames,
        "verify": bool(verify),
        "video_fps": video_fps,
        "min_width": int(index["width"].min()),
        "min_height": int(index["height"].min()),
        "seconds": round(seconds, 3),
        "scan_seconds": round(t_scan, 3),
        "probe_seconds": round(t_probe, 3),
        "decode_seconds": round(t_decode, 3),
        "probe_images_per_second": round(len(todo) / t_probe, 1) if todo and t_probe > 0 else None,
    }
    logger.info(
        "Frame index of %s (%s): %d frame(s) in %d video(s), %d reject(s); %d image(s) probed "
        "(%s img/s, %d workers), %d reused; %d video(s) decoded into %d frame(s), %d reused; %.2f s",
        root, kind, summary["frames"], summary["videos"], summary["rejects"], len(todo),
        summary["probe_images_per_second"], n_workers, reused, n_decoded, n_decoded_frames, n_video_reused,
        seconds,
    )
    return FrameIndex(index, rejects_df, summary)
