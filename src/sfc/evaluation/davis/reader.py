"""Reader and writer for the DAVIS-2017 semi-supervised layout.

This is the one place in the project that touches DAVIS files on disk. The layout is::

    <root>/JPEGImages/480p/<seq>/00000.jpg ...   RGB frames
    <root>/Annotations/480p/<seq>/00000.png ...  palette ('P') PNG masks, pixel value = object id
    <root>/ImageSets/2017/<split>.txt            one sequence name per line

All image I/O goes through PIL. Every problem with the files raises :class:`DavisFormatError`
(a ``ValueError``) whose message names the offending file or folder and says what was expected
and what was found, so that a bad dataset fails fast and legibly before any long computation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sfc.atomic import atomic_path
from sfc.data.images import read_rgb, sort_stems

logger = logging.getLogger(__name__)

__all__ = [
    "ANNOTATIONS_DIR",
    "DAVIS_PALETTE",
    "IMAGESETS_DIR",
    "JPEG_DIR",
    "DavisFormatError",
    "DavisSequence",
    "annotation_path",
    "frame_path",
    "iter_frames",
    "list_annotations",
    "list_frames",
    "load_sequence",
    "onehot",
    "read_annotations",
    "read_frame",
    "read_mask",
    "read_split",
    "resolve_sequences",
    "validate_annotations",
    "write_mask",
]

#: Frame folder relative to the dataset root.
JPEG_DIR = Path("JPEGImages") / "480p"
#: Annotation folder relative to the dataset root.
ANNOTATIONS_DIR = Path("Annotations") / "480p"
#: Split-file folder relative to the dataset root.
IMAGESETS_DIR = Path("ImageSets") / "2017"

PathLike = str | os.PathLike[str]


def _make_davis_palette() -> np.ndarray:
    """Build the standard DAVIS / PASCAL-VOC colour palette (bit-interleaved colour map).

    Returns:
        palette: (256, 3) uint8; entry 0 is black, 1 = (128, 0, 0), 2 = (0, 128, 0), ...
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


#: (256, 3) uint8 palette of DAVIS annotation PNGs (same as davis2017-evaluation).
DAVIS_PALETTE: np.ndarray = _make_davis_palette()
DAVIS_PALETTE.setflags(write=False)


class DavisFormatError(ValueError):
    """A DAVIS file or folder is missing, unreadable or not in the expected format."""


# --------------------------------------------------------------------------------------------- paths


def _sort_stems(stems: Sequence[str]) -> list[str]:
    """Sort file stems numerically when they are all digits (:func:`sfc.data.images.sort_stems`)."""
    return sort_stems(stems)


def frame_path(root: PathLike, seq: str, frame: str) -> Path:
    """Path of one frame: ``<root>/JPEGImages/480p/<seq>/<frame>.jpg`` (existence not checked)."""
    return Path(root) / JPEG_DIR / seq / f"{frame}.jpg"


def annotation_path(root: PathLike, seq: str, frame: str) -> Path:
    """Path of one mask: ``<root>/Annotations/480p/<seq>/<frame>.png`` (existence not checked)."""
    return Path(root) / ANNOTATIONS_DIR / seq / f"{frame}.png"


def read_split(root: PathLike, split: str) -> list[str]:
    """Read the sequence names of a split file.

    Blank lines are skipped; duplicated names are kept once (first occurrence) with a warning.

    Args:
        root: dataset root.
        split: split name, e.g. ``"val"`` -> ``<root>/ImageSets/2017/val.txt``.

    Returns:
        Sequence names in file order.

    Raises:
        DavisFormatError: the split file is missing, unreadable or lists no sequence.
    """
    path = Path(root) / IMAGESETS_DIR / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DavisFormatError(
            f"{path}: split file not found (expected ImageSets/2017/{split}.txt under dataset root "
            f"{Path(root)}; available splits: {available or 'none'})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DavisFormatError(f"{path}: cannot read split file as UTF-8 text: {exc}") from exc
    names: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        name = line.strip()
        if not name:
            continue
        if name in seen:
            logger.warning("%s: sequence %r listed more than once; keeping the first", path, name)
            continue
        seen.add(name)
        names.append(name)
    if not names:
        raise DavisFormatError(
            f"{path}: expected one sequence name per line, found no sequence names (empty split file)"
        )
    return names


def resolve_sequences(root: PathLike, split: str, sequences: list[str] | None) -> list[str]:
    """Turn a split name and an optional explicit list into validated sequence names.

    Args:
        root: dataset root.
        split: split name used when ``sequences`` is None.
        sequences: explicit sequence names, or None for every sequence of the split.

    Returns:
        Sequence names (order kept), each with a ``JPEGImages/480p/<seq>`` folder.

    Raises:
        DavisFormatError: the frame folder is missing, the list is empty, or some names have no
            frame folder (all unknown names are listed).
    """
    names = read_split(root, split) if sequences is None else list(sequences)
    jpeg_root = Path(root) / JPEG_DIR
    if not jpeg_root.is_dir():
        raise DavisFormatError(
            f"{jpeg_root}: frame folder not found (expected JPEGImages/480p/<sequence>/ folders under "
            f"dataset root {Path(root)})"
        )
    if not names:
        raise DavisFormatError(
            f"{jpeg_root}: expected at least one sequence name, found an empty sequence list"
        )
    unknown = [n for n in names if not n or not (jpeg_root / n).is_dir()]
    if unknown:
        available = sorted(p.name for p in jpeg_root.iterdir() if p.is_dir())
        shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
        source = f"split {split!r}" if sequences is None else "the requested sequences"
        raise DavisFormatError(
            f"{jpeg_root}: unknown sequence(s) in {source}: {', '.join(map(repr, unknown))} "
            f"(expected a folder {jpeg_root}/<sequence>; found: {shown or 'no sequence folders'})"
        )
    return names


def list_frames(root: PathLike, seq: str) -> list[str]:
    """List the frame stems of a sequence.

    Args:
        root: dataset root.
        seq: sequence name.

    Returns:
        Sorted stems (``"00000"``, ``"00001"``, ...) of ``JPEGImages/480p/<seq>/*.jpg``; numeric
        order when every stem is made of digits.

    Raises:
        DavisFormatError: the folder is missing or holds no ``.jpg`` file.
    """
    folder = Path(root) / JPEG_DIR / seq
    if not folder.is_dir():
        raise DavisFormatError(f"{folder}: sequence frame folder not found (expected JPEGImages/480p/{seq}/)")
    stems = [p.stem for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.is_file()]
    if not stems:
        raise DavisFormatError(f"{folder}: expected JPEG frames (*.jpg), found none")
    return _sort_stems(stems)


def list_annotations(root: PathLike, seq: str) -> list[str]:
    """List the annotated frame stems of a sequence (``Annotations/480p/<seq>/*.png``), sorted.

    Raises:
        DavisFormatError: the folder is missing or holds no ``.png`` file.
    """
    folder = Path(root) / ANNOTATIONS_DIR / seq
    if not folder.is_dir():
        raise DavisFormatError(f"{folder}: annotation folder not found (expected Annotations/480p/{seq}/)")
    stems = [p.stem for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()]
    if not stems:
        raise DavisFormatError(f"{folder}: expected PNG annotations (*.png), found none")
    return _sort_stems(stems)


# --------------------------------------------------------------------------------------------- images


def read_frame(path: PathLike) -> np.ndarray:
    """Read one RGB frame, fully decoded.

    Args:
        path: image file (normally a JPEG).

    Returns:
        frame: (H, W, 3) uint8 RGB.

    Raises:
        DavisFormatError: the file is missing, not an image, or truncated/corrupt.
    """
    return read_rgb(path, error=DavisFormatError, what="JPEG frame")


def read_mask(path: PathLike) -> np.ndarray:
    """Read one annotation mask.

    Accepts palette (``'P'``) PNGs, whose pixel indices are the object ids, and greyscale
    (``'L'``) PNGs, whose grey levels are the ids.

    Args:
        path: PNG file.

    Returns:
        mask: (H, W) uint8 object ids (0 = background).

    Raises:
        DavisFormatError: the file is missing/unreadable, or is an RGB/RGBA (or other non-indexed)
            image, which cannot be mapped to ids without guessing.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode not in ("P", "L"):
                raise DavisFormatError(
                    f"{path}: expected a palette ('P') PNG whose pixel values are object ids "
                    f"(or a greyscale 'L' PNG), found mode {mode!r}"
                    + (" (colour image)" if mode in ("RGB", "RGBA") else "")
                )
            mask = np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise DavisFormatError(f"{path}: annotation file not found") from exc
    except DavisFormatError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DavisFormatError(
            f"{path}: expected a readable PNG mask, found an unreadable or truncated image ({exc})"
        ) from exc
    if mask.ndim != 2:
        raise DavisFormatError(f"{path}: expected a single-channel (H, W) mask, found shape {mask.shape}")
    return mask


def read_annotations(root: PathLike, seq: str, frame_names: list[str] | None = None) -> np.ndarray:
    """Read the annotation masks of a sequence.

    Args:
        root: dataset root.
        seq: sequence name.
        frame_names: frame stems to read; None reads every ``Annotations/480p/<seq>/*.png``.

    Returns:
        masks: (T, H, W) uint8 object ids.

    Raises:
        DavisFormatError: the folder or a requested PNG is missing, a PNG is not a valid mask, or
            the masks do not all have the same size.
    """
    names = list_annotations(root, seq) if frame_names is None else list(frame_names)
    if not names:
        raise DavisFormatError(
            f"{Path(root) / ANNOTATIONS_DIR / seq}: expected at least one frame name, found none"
        )
    masks: list[np.ndarray] = []
    first_path: Path | None = None
    for name in names:
        path = annotation_path(root, seq, name)
        if not path.is_file():
            raise DavisFormatError(f"{path}: annotation for frame {name!r} of sequence {seq!r} not found")
        mask = read_mask(path)
        if masks and mask.shape != masks[0].shape:
            raise DavisFormatError(
                f"{path}: expected size (H, W) = {masks[0].shape} like {first_path}, found {mask.shape}"
            )
        if first_path is None:
            first_path = path
        masks.append(mask)
    return np.stack(masks, axis=0)


def _as_mask_array(mask: np.ndarray, path: Path) -> np.ndarray:
    """Validate and convert a mask to (H, W) uint8 for writing."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise DavisFormatError(f"{path}: expected a (H, W) mask to write, found shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DavisFormatError(
            f"{path}: expected an integer (H, W) id mask to write, found dtype {arr.dtype}"
        )
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
        raise DavisFormatError(
            f"{path}: expected object ids in [0, 255] to write, found range [{arr.min()}, {arr.max()}]"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write an id mask as a DAVIS palette PNG, atomically.

    The PNG is written to a temporary file in the destination folder and moved over the target
    (:func:`sfc.atomic.atomic_path`), so readers never see a partial file and a failure leaves no
    target (and no temporary file) behind. Parent folders are created.

    Args:
        path: destination ``.png`` file.
        mask: (H, W) integer (or bool) object ids in [0, 255].

    Raises:
        DavisFormatError: the mask is not 2-D or not integer ids in [0, 255].
    """
    path = Path(path)
    ids = _as_mask_array(mask, path)
    img = Image.frombytes("P", (ids.shape[1], ids.shape[0]), ids.tobytes())
    img.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


# --------------------------------------------------------------------------------------------- sequences


@dataclass(eq=False)
class DavisSequence:
    """A validated DAVIS sequence whose frames are read lazily (see :func:`iter_frames`).

    Attributes:
        name: sequence name.
        root: dataset root.
        frame_names: frame stems in temporal order (length T).
        frame_paths: JPEG paths, aligned with ``frame_names``.
        size: (H, W) of frame 0.
        first_mask: (H, W) uint8 ids of the first frame's annotation.
        object_ids: sorted ids > 0 present in ``first_mask``.
    """

    name: str
    root: Path
    frame_names: list[str]
    frame_paths: list[Path]
    size: tuple[int, int]
    first_mask: np.ndarray
    object_ids: list[int]

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.frame_names)

    def __len__(self) -> int:
        """Number of frames T."""
        return len(self.frame_names)

    def annotation_path(self, frame: str) -> Path:
        """Path of the annotation PNG of one frame stem (existence not checked)."""
        return annotation_path(self.root, self.name, frame)


def load_sequence(root: PathLike, seq: str, *, max_frames: int | None = None) -> DavisSequence:
    """Validate a sequence and load its first frame's annotation.

    Checks, before any long work: the frame folder exists and holds JPEGs; the first frame is a
    readable image; ``Annotations/480p/<seq>/<first frame>.png`` exists and is a valid mask of the
    same size as the first frame; the first mask holds at least one object.

    Args:
        root: dataset root.
        seq: sequence name.
        max_frames: keep only the first ``max_frames`` frames (>= 1); None keeps all.

    Returns:
        The validated :class:`DavisSequence`.

    Raises:
        DavisFormatError: any of the checks above fails, or ``max_frames < 1``.
    """
    root = Path(root)
    if max_frames is not None and max_frames < 1:
        raise DavisFormatError(f"{root / JPEG_DIR / seq}: expected max_frames >= 1, found {max_frames}")
    names = list_frames(root, seq)
    if max_frames is not None:
        names = names[:max_frames]
    paths = [frame_path(root, seq, n) for n in names]
    # list_frames accepts any '.jpg' case; keep the real file name when it differs.
    folder = root / JPEG_DIR / seq
    if not paths[0].is_file():
        real = {p.stem: p for p in folder.iterdir() if p.suffix.lower() == ".jpg"}
        paths = [real[n] for n in names]

    frame0 = read_frame(paths[0])
    size = (int(frame0.shape[0]), int(frame0.shape[1]))

    mask_path = annotation_path(root, seq, names[0])
    if not mask_path.is_file():
        raise DavisFormatError(
            f"{mask_path}: first-frame annotation not found (expected the mask of frame {names[0]!r} "
            f"of sequence {seq!r}, semi-supervised protocol)"
        )
    first_mask = read_mask(mask_path)
    if first_mask.shape != size:
        raise DavisFormatError(
            f"{mask_path}: expected the first mask to have the first frame's size (H, W) = {size} "
            f"({paths[0]}), found {tuple(first_mask.shape)}"
        )
    object_ids = sorted(int(i) for i in np.unique(first_mask) if i > 0)
    if not object_ids:
        raise DavisFormatError(
            f"{mask_path}: expected at least one object (id > 0) in the first-frame annotation, found only background"
        )
    logger.debug(
        "Loaded DAVIS sequence %s: %d frames, size %s, objects %s", seq, len(names), size, object_ids
    )
    return DavisSequence(
        name=seq,
        root=root,
        frame_names=names,
        frame_paths=paths,
        size=size,
        first_mask=first_mask,
        object_ids=object_ids,
    )


def validate_annotations(seq: DavisSequence) -> None:
    """Check the annotation of every frame of ``seq`` before any long work uses them.

    Each ``Annotations/480p/<seq>/<frame>.png`` must exist and decode as a palette (or greyscale) PNG
    of the first frame's size; scoring reads all of them, so a bad one found only then would cost
    the whole propagation.

    Raises:
        DavisFormatError: the first bad annotation, named, with what was expected and found.
    """
    for name in seq.frame_names[1:]:
        path = seq.annotation_path(name)
        if not path.is_file():
            raise DavisFormatError(
                f"{path}: annotation of frame {name!r} of sequence {seq.name!r} not found (every frame is scored "
                "against its annotation)"
            )
        mask = read_mask(path)
        if mask.shape != tuple(seq.size):
            raise DavisFormatError(
                f"{path}: expected an annotation of the first frame's size (H, W) = {tuple(seq.size)}, "
                f"found {mask.shape}"
            )


def iter_frames(seq: DavisSequence) -> Iterator[np.ndarray]:
    """Yield the frames of a sequence in order, checking each one.

    Args:
        seq: a sequence from :func:`load_sequence`.

    Yields:
        frame: (H, W, 3) uint8 RGB, with (H, W) == ``seq.size``.

    Raises:
        DavisFormatError: a frame is unreadable, or its size differs from frame 0's.
    """
    for path in seq.frame_paths:
        frame = read_frame(path)
        if frame.shape[:2] != tuple(seq.size):
            raise DavisFormatError(
                f"{path}: expected frame size (H, W) = {tuple(seq.size)} like {seq.frame_paths[0]}, "
                f"found {frame.shape[:2]}"
            )
        yield frame


def onehot(mask: np.ndarray, object_ids: list[int]) -> np.ndarray:
    """One-hot encode an id mask.

    Args:
        mask: (H, W) integer object ids.
        object_ids: ids (> 0, distinct) giving the channel order.

    Returns:
        (H, W, 1 + len(object_ids)) float32; channel 0 = background, channel i = ``object_ids[i-1]``.
        Pixels whose id is not in ``object_ids`` count as background.

    Raises:
        DavisFormatError: ``mask`` is not 2-D, or ``object_ids`` holds 0, negatives or duplicates.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DavisFormatError(f"onehot: expected a (H, W) id mask, found shape {mask.shape}")
    ids = [int(i) for i in object_ids]
    if any(i <= 0 for i in ids) or len(set(ids)) != len(ids):
        raise DavisFormatError(f"onehot: expected distinct object ids > 0, found {ids}")
    out = np.zeros((*mask.shape, 1 + len(ids)), dtype=np.float32)
    if ids:
        out[..., 1:] = mask[..., None] == np.asarray(ids, dtype=np.int64)[None, None, :]
    out[..., 0] = 1.0 - out[..., 1:].sum(axis=-1)
    return out
