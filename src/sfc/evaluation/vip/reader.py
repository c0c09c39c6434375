"""Reader for the VIP (Video Instance-level Parsing) human-part layout.

This is the one place in the project that touches VIP files on disk. The layout (VIP_Fine) is::

    <root>/VIP_Fine/Images/<video>/<frame>.jpg                       RGB frames
    <root>/VIP_Fine/Annotations/Category_ids/<video>/<frame>.png     part ids (mode 'L', 0..19, 255 = void)
    <video list>                                                     one video name per line (optional)

VIP_Fine annotates every frame it ships, so every frame must have its ``Category_ids`` PNG. The 20
classes are those of the official ``eval_vip.py`` (:data:`CLASSES`, id = index).

Label images are read with PIL as stored ids: greyscale (``'L'``) or palette (``'P'``, indices = ids)
PNGs. Colour (RGB/RGBA) and other modes are refused naming the file: the official CRW loader reads
label PNGs with ``cv2.imread`` (palette PNGs become BGR colours) and would silently treat colours as
ids; this reader never guesses. Every problem raises :class:`VipFormatError` (a ``ValueError``) whose
message names the file or folder and says what was expected and what was found.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sfc.data.images import read_rgb, sort_stems

logger = logging.getLogger(__name__)

__all__ = [
    "ANNOTATIONS_DIR",
    "CLASSES",
    "IGNORE",
    "IMAGES_DIR",
    "N_CLASSES",
    "VipFormatError",
    "VipVideo",
    "annotation_path",
    "frame_path",
    "iter_frames",
    "list_frames",
    "list_videos",
    "load_video",
    "read_frame",
    "read_labels",
    "read_split",
]

#: The 20 part classes of the official ``eval_vip.py``; a class id is its index.
CLASSES: tuple[str, ...] = (
    "background", "hat", "hair", "sun-glasses", "upper-clothes", "dress", "coat", "socks", "pants", "gloves",
    "scarf", "skirt", "torso-skin", "face", "right-arm", "left-arm", "right-leg", "left-leg", "right-shoe",
    "left-shoe",
)
#: Number of part classes (ids 0..19, background included).
N_CLASSES = 20
#: Void label of the annotations: not a class, never scored.
IGNORE = 255
#: Frame folder relative to the dataset root.
IMAGES_DIR = Path("VIP_Fine") / "Images"
#: Part-id annotation folder relative to the dataset root.
ANNOTATIONS_DIR = Path("VIP_Fine") / "Annotations" / "Category_ids"

PathLike = str | os.PathLike[str]


class VipFormatError(ValueError):
    """A VIP file or folder is missing, unreadable or not in the expected format."""


# --------------------------------------------------------------------------------------------- paths


def _sort_stems(stems: Sequence[str]) -> list[str]:
    """Sort file stems numerically when they are all digits (:func:`sfc.data.images.sort_stems`)."""
    return sort_stems(stems)


def frame_path(root: PathLike, video: str, frame: str) -> Path:
    """``<root>/VIP_Fine/Images/<video>/<frame>.jpg`` (existence not checked)."""
    return Path(root) / IMAGES_DIR / video / f"{frame}.jpg"


def annotation_path(root: PathLike, video: str, frame: str) -> Path:
    """``<root>/VIP_Fine/Annotations/Category_ids/<video>/<frame>.png`` (existence not checked)."""
    return Path(root) / ANNOTATIONS_DIR / video / f"{frame}.png"


def _images_root(root: PathLike) -> Path:
    images = Path(root) / IMAGES_DIR
    if not images.is_dir():
        raise VipFormatError(
            f"{images}: frame folder not found (expected VIP_Fine/Images/<video>/*.jpg under dataset root {Path(root)})"
        )
    return images


def list_videos(root: PathLike) -> list[str]:
    """Every video of the dataset: the sub-folders of ``VIP_Fine/Images``, sorted.

    Raises:
        VipFormatError: the frame folder is missing or holds no video folder.
    """
    images = _images_root(root)
    names = _sort_stems([p.name for p in images.iterdir() if p.is_dir()])
    if not names:
        raise VipFormatError(f"{images}: expected one folder per video, found none")
    return names


def _resolve_list_path(root: Path, split_path: PathLike) -> Path:
    """An absolute path as is; a relative one under ``root``, else relative to the working directory."""
    path = Path(split_path)
    if path.is_absolute():
        return path
    candidates = [root / path, path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise VipFormatError(
        f"{root / path}: video list not found (tried {', '.join(str(c) for c in candidates)}; expected a text file "
        "with one video name per line, given as an absolute path or relative to the VIP root)"
    )


def read_split(root: PathLike, split_path: PathLike) -> list[str]:
    """Read a video list: one video name per line.

    Blank lines and surrounding whitespace are skipped; a name listed twice is kept once (first
    occurrence) with a warning. Every name must be a folder of ``VIP_Fine/Images``.

    Args:
        root: dataset root.
        split_path: the list file; absolute, or relative to ``root`` (e.g. ``lists/val_videos.txt``),
            or else relative to the working directory.

    Returns:
        Video names in file order.

    Raises:
        VipFormatError: the file is missing, unreadable or empty, or names unknown videos (all of
            them are listed, with some of the available ones).
    """
    root = Path(root)
    path = _resolve_list_path(root, split_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VipFormatError(f"{path}: cannot read the video list as UTF-8 text: {exc}") from exc
    names: list[str] = []
    for line in text.splitlines():
        name = line.strip()
        if not name:
            continue
        if name in names:
            logger.warning("%s: video %r listed more than once; keeping the first", path, name)
            continue
        names.append(name)
    if not names:
        raise VipFormatError(f"{path}: expected one video name per line, found no video name (empty list)")
    images = _images_root(root)
    unknown = [n for n in names if not (images / n).is_dir()]
    if unknown:
        available = _sort_stems([p.name for p in images.iterdir() if p.is_dir()])
        shown = ", ".join(available[:10]) + (f" ... ({len(available)} in all)" if len(available) > 10 else "")
        raise VipFormatError(
            f"{path}: unknown video(s) {', '.join(map(repr, unknown))} (expected folders {images}/<video>; "
            f"found: {shown or 'no video folders'})"
        )
    return names


def list_frames(root: PathLike, video: str) -> list[str]:
    """The frame stems of a video (``VIP_Fine/Images/<video>/*.jpg``), sorted (numerically when all digits).

    Raises:
        VipFormatError: the folder is missing or holds no ``.jpg`` file.
    """
    folder = Path(root) / IMAGES_DIR / video
    if not folder.is_dir():
        raise VipFormatError(f"{folder}: video frame folder not found (expected VIP_Fine/Images/{video}/)")
    stems = [p.stem for p in folder.iterdir() if p.suffix == ".jpg" and p.is_file()]
    if not stems:
        raise VipFormatError(f"{folder}: expected JPEG frames (*.jpg), found none")
    return _sort_stems(stems)


# --------------------------------------------------------------------------------------------- images


def read_frame(path: PathLike) -> np.ndarray:
    """Read one RGB frame, fully decoded.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        VipFormatError: the file is missing, not an image, or truncated.
    """
    return read_rgb(path, error=VipFormatError, what="JPEG frame")


_MODE_HINT = {
    "RGB": " (a colour image: ids cannot be read from colours without guessing; write gray id PNGs)",
    "RGBA": " (a colour image: ids cannot be read from colours without guessing; write gray id PNGs)",
}


def _check_label_mode(path: Path, mode: str) -> None:
    if mode not in ("L", "P"):
        raise VipFormatError(
            f"{path}: expected a greyscale ('L') or palette ('P') PNG whose pixel values are part ids, "
            f"found mode {mode!r}{_MODE_HINT.get(mode, '')}"
        )


def read_labels(path: PathLike) -> np.ndarray:
    """Read one part-id label image.

    Args:
        path: a PNG in mode ``'L'`` (grey level = id) or ``'P'`` (palette index = id).

    Returns:
        (H, W) uint8 part ids (0..19 classes, 255 void; other values are returned as stored).

    Raises:
        VipFormatError: the file is missing or unreadable, or not an ``L``/``P`` image (RGB, RGBA,
            16-bit, ...).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            _check_label_mode(path, img.mode)
            img.load()
            labels = np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise VipFormatError(f"{path}: label file not found") from exc
    except VipFormatError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VipFormatError(f"{path}: expected a readable PNG of part ids, found an unreadable or truncated image ({exc})") from exc
    if labels.ndim != 2:
        raise VipFormatError(f"{path}: expected a single-channel (H, W) label image, found shape {labels.shape}")
    return labels


def _label_header(path: Path) -> tuple[int, int]:
    """(H, W) of a label PNG from its header, checking its mode (pixels are not decoded)."""
    try:
        with Image.open(path) as img:
            _check_label_mode(path, img.mode)
            return int(img.size[1]), int(img.size[0])
    except VipFormatError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VipFormatError(f"{path}: expected a readable PNG of part ids, found an unreadable image ({exc})") from exc


# --------------------------------------------------------------------------------------------- videos


@dataclass(eq=False)
class VipVideo:
    """A validated VIP video whose frames are read lazily (see :func:`iter_frames`).

    Attributes:
        name: video name (folder under ``VIP_Fine/Images``).
        frame_names: frame stems in temporal order (length T).
        frame_paths: JPEG paths, aligned with ``frame_names``.
        annotation_paths: ``{frame stem: Category_ids PNG}`` for every frame.
        size: (H, W) of frame 0 (= of every annotation).
        first_labels: (H, W) uint8 part ids of frame 0 (0..19, 255 void).
    """

    name: str
    frame_names: list[str]
    frame_paths: list[Path]
    annotation_paths: dict[str, Path]
    size: tuple[int, int]
    first_labels: np.ndarray

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.frame_names)

    def __len__(self) -> int:
        """Number of frames T."""
        return len(self.frame_names)


def load_video(root: PathLike, name: str, *, max_frames: int | None = None) -> VipVideo:
    """Validate a video before any long work and load its first frame's labels.

    Checks: the frame folder holds JPEGs (sorted); the first frame is readable; its ``Category_ids``
    annotation exists, has the frame's size and holds only ids 0..19 or 255; every other frame
    (up to ``max_frames``) has an annotation, an ``L``/``P`` PNG of the same size (read from its
    header; values outside 0..19 there are void for the metric, as in the official scorer).

    Args:
        root: dataset root.
        name: video name.
        max_frames: keep only the first ``max_frames`` frames (>= 1); None keeps all.

    Returns:
        The validated :class:`VipVideo`.

    Raises:
        VipFormatError: any of the checks above fails (the message names the file).
    """
    root = Path(root)
    if max_frames is not None and max_frames < 1:
        raise VipFormatError(f"{root / IMAGES_DIR / name}: expected max_frames >= 1, found {max_frames}")
    names = list_frames(root, name)
    if max_frames is not None:
        names = names[:max_frames]
    paths = [frame_path(root, name, n) for n in names]
    frame0 = read_frame(paths[0])
    size = (int(frame0.shape[0]), int(frame0.shape[1]))

    annotations = {n: annotation_path(root, name, n) for n in names}
    first_path = annotations[names[0]]
    if not first_path.is_file():
        raise VipFormatError(
            f"{first_path}: first-frame annotation not found (expected the part ids of frame {names[0]!r} of video "
            f"{name!r}: the labels that are propagated)"
        )
    first = read_labels(first_path)
    if first.shape != size:
        raise VipFormatError(
            f"{first_path}: expected the first frame's size (H, W) = {size} ({paths[0]}), found {tuple(first.shape)}"
        )
    values = np.unique(first)
    bad = [int(v) for v in values if v >= N_CLASSES and v != IGNORE]
    if bad:
        raise VipFormatError(
            f"{first_path}: expected part ids 0..{N_CLASSES - 1} or {IGNORE} (void) in the first-frame annotation, "
            f"found {bad}"
        )
    if not any(v < N_CLASSES for v in values):
        raise VipFormatError(f"{first_path}: expected labelled pixels in the first-frame annotation, found only void ({IGNORE})")
    for frame in names[1:]:
        path = annotations[frame]
        if not path.is_file():
            raise VipFormatError(
                f"{path}: annotation of frame {frame!r} of video {name!r} not found (VIP_Fine annotates every frame; "
                "every frame is scored against its annotation)"
            )
        hw = _label_header(path)
        if hw != size:
            raise VipFormatError(f"{path}: expected an annotation of the first frame's size (H, W) = {size}, found {hw}")
    logger.debug("Loaded VIP video %s: %d frames, size %s, parts %s", name, len(names), size, values.tolist())
    return VipVideo(name=name, frame_names=names, frame_paths=paths, annotation_paths=annotations, size=size,
                    first_labels=first)


def iter_frames(video: VipVideo) -> Iterator[np.ndarray]:
    """Yield the frames of a video in order, checking each one.

    Yields:
        (H, W, 3) uint8 RGB, with (H, W) == ``video.size``.

    Raises:
        VipFormatError: a frame is unreadable or its size differs from frame 0's.
    """
    for path in video.frame_paths:
        frame = read_frame(path)
        if frame.shape[:2] != tuple(video.size):
            raise VipFormatError(
                f"{path}: expected frame size (H, W) = {tuple(video.size)} like {video.frame_paths[0]}, found {frame.shape[:2]}"
            )
        yield frame
