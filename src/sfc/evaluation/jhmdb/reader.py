"""Reader of the JHMDB layout: frames, joint positions and split files.

This is the one place in the project that touches JHMDB files on disk. The layout is::

    <root>/Rename_Images/<class>/<video>/00001.png ...                RGB frames (1-based numbers)
    <root>/joint_positions/<class>/<video>/joint_positions.mat        MATLAB 5 file holding pos_img

A video is named ``"<class>/<video>"``. ``pos_img`` is JHMDB's ``(2, 15, T)`` float64 array: row 0 is
x (column), row 1 is y (row), in **1-based** pixels, one column per joint in :data:`JOINTS` order and
one slice per frame. Split files come in two formats (see :func:`read_split`).

Frames are ordered as the official code (``videowalk/code/data/jhmdb.py``) orders them: by
``int(file_name.split('.')[0])``. Image I/O goes through PIL, ``.mat`` files through
``scipy.io.loadmat``. Every problem with the files raises :class:`JhmdbFormatError` (a
``ValueError``) whose message names the offending file or folder and says what was expected and what
was found, so that a bad dataset fails before any long computation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from sfc.data.images import read_rgb

logger = logging.getLogger(__name__)

__all__ = [
    "FRAMES_DIR",
    "JOINTS",
    "JOINTS_DIR",
    "MAT_NAME",
    "JhmdbFormatError",
    "JhmdbVideo",
    "frame_folder",
    "iter_frames",
    "list_frame_files",
    "list_videos",
    "load_video",
    "mat_path",
    "read_frame",
    "read_pos_img",
    "read_split",
]

#: Frame folder (``<class>/<video>/`` inside) relative to the dataset root.
FRAMES_DIR = Path("Rename_Images")
#: Joint-position folder (``<class>/<video>/joint_positions.mat`` inside) relative to the dataset root.
JOINTS_DIR = Path("joint_positions")
#: File name of the joint positions of one video.
MAT_NAME = "joint_positions.mat"

#: The 15 JHMDB joints, in the order of ``pos_img``'s second axis.
JOINTS: tuple[str, ...] = (
    "neck",
    "belly",
    "face",
    "right_shoulder",
    "left_shoulder",
    "right_hip",
    "left_hip",
    "right_elbow",
    "left_elbow",
    "right_knee",
    "left_knee",
    "right_wrist",
    "left_wrist",
    "right_ankle",
    "left_ankle",
)

PathLike = str | os.PathLike[str]


class JhmdbFormatError(ValueError):
    """A JHMDB file or folder is missing, unreadable or not in the expected format."""


# --------------------------------------------------------------------------------------------- paths


def _check_name(name: str) -> tuple[str, str]:
    """Split a video name ``"<class>/<video>"`` into its two parts.

    Raises:
        JhmdbFormatError: the name does not have exactly two non-empty, plain parts.
    """
    parts = str(name).split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise JhmdbFormatError(f"{name!r}: expected a JHMDB video name '<class>/<video>', found {name!r}")
    return parts[0], parts[1]


def frame_folder(root: PathLike, name: str) -> Path:
    """``<root>/Rename_Images/<class>/<video>`` (existence not checked)."""
    cls, video = _check_name(name)
    return Path(root) / FRAMES_DIR / cls / video


def mat_path(root: PathLike, name: str) -> Path:
    """``<root>/joint_positions/<class>/<video>/joint_positions.mat`` (existence not checked)."""
    cls, video = _check_name(name)
    return Path(root) / JOINTS_DIR / cls / video / MAT_NAME


def _png_files(folder: Path) -> list[Path]:
    """Files of ``folder`` whose suffix is ``.png`` (any case), unsorted."""
    return [p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()]


def list_frame_files(folder: PathLike) -> list[Path]:
    """The PNG frames of one video folder, in the official order.

    The official code sorts the file names by ``int(name.split('.')[0])`` (``00001.png`` -> 1).

    Args:
        folder: ``<root>/Rename_Images/<class>/<video>``.

    Returns:
        Frame paths, first frame first.

    Raises:
        JhmdbFormatError: the folder is missing, holds no PNG, or a PNG name is not a number.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise JhmdbFormatError(
            f"{folder}: frame folder not found (expected {FRAMES_DIR}/<class>/<video>/ holding 00001.png ...)"
        )
    files = _png_files(folder)
    if not files:
        raise JhmdbFormatError(f"{folder}: expected PNG frames (00001.png ...), found none")
    keyed: list[tuple[int, str, Path]] = []
    for path in files:
        stem = path.name.split(".")[0]
        try:
            number = int(stem)
        except ValueError:
            raise JhmdbFormatError(
                f"{path}: expected a numbered frame such as 00001.png (frames are ordered by the number "
                f"before the first '.'), found the name {path.name!r}"
            ) from None
        keyed.append((number, path.name, path))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [path for _, _, path in keyed]


def list_videos(root: PathLike) -> list[str]:
    """Every video of the dataset that has PNG frames and a ``joint_positions.mat``, sorted.

    Args:
        root: dataset root.

    Returns:
        Names ``"<class>/<video>"`` in sorted order (videos lacking frames or a ``.mat`` are left out).

    Raises:
        JhmdbFormatError: ``<root>/Rename_Images`` is missing.
    """
    frames_root = Path(root) / FRAMES_DIR
    if not frames_root.is_dir():
        raise JhmdbFormatError(
            f"{frames_root}: frame folder not found (expected {FRAMES_DIR}/<class>/<video>/ folders under "
            f"dataset root {Path(root)})"
        )
    names: list[str] = []
    for cls_dir in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        for video_dir in sorted(p for p in cls_dir.iterdir() if p.is_dir()):
            name = f"{cls_dir.name}/{video_dir.name}"
            if _png_files(video_dir) and mat_path(root, name).is_file():
                names.append(name)
    return names


# --------------------------------------------------------------------------------------------- splits


def _name_from_crw_line(split_path: Path, lineno: int, frames: str, mat: str) -> str:
    """``<class>/<video>`` of a CRW list line ``<frame folder> <joint_positions.mat>``."""
    where = f"{split_path}, line {lineno}"
    frame_parts = PurePath(frames.rstrip("/\\")).parts
    mat_parts = PurePath(mat).parts
    if len(frame_parts) < 2:
        raise JhmdbFormatError(
            f"{where}: expected a frame folder '.../{FRAMES_DIR}/<class>/<video>', found {frames!r}"
        )
    if len(mat_parts) < 3 or mat_parts[-1] != MAT_NAME:
        raise JhmdbFormatError(
            f"{where}: expected a joint file '.../{JOINTS_DIR}/<class>/<video>/{MAT_NAME}', found {mat!r}"
        )
    name = f"{frame_parts[-2]}/{frame_parts[-1]}"
    mat_name = f"{mat_parts[-3]}/{mat_parts[-2]}"
    if name != mat_name:
        raise JhmdbFormatError(
            f"{where}: expected the frame folder and the joint file of the same video, found frames of "
            f"{name!r} and joints of {mat_name!r}"
        )
    return name


def _find_class(root: Path, split_path: Path, lineno: int, video: str) -> str:
    """The ``<class>`` folder of ``Rename_Images/*/<video>`` (JHMDB split files do not name it)."""
    frames_root = root / FRAMES_DIR
    matches = sorted(p.parent.name for p in frames_root.glob(f"*/{video}") if p.is_dir()) if frames_root.is_dir() else []
    if not matches:
        raise JhmdbFormatError(
            f"{split_path}, line {lineno}: video {video!r} not found (expected a folder "
            f"{frames_root}/<class>/{video})"
        )
    if len(matches) > 1:
        raise JhmdbFormatError(
            f"{split_path}, line {lineno}: video {video!r} is ambiguous (expected one class folder, found "
            f"{', '.join(matches)})"
        )
    return f"{matches[0]}/{video}"


def read_split(root: PathLike, split_path: PathLike) -> list[str]:
    """Read the videos of a split file, in file order.

    Two formats are accepted (one per file; blank lines are skipped):

    * CRW list lines ``<frame folder> <path to joint_positions.mat>`` (whitespace separated, as
      ``videowalk`` reads them); the paths may be absolute (even from another machine) or relative
      to ``root``: only their last components, ``<class>/<video>``, are used, and both must name
      the same video;
    * JHMDB split lines ``<video>.avi <1|2>``: only the test videos (``2``) are kept; the class is
      the folder ``Rename_Images/<class>/<video>`` that holds the video.

    Duplicated videos are kept once (first occurrence) with a warning.

    Args:
        root: dataset root.
        split_path: the split file.

    Returns:
        Video names ``"<class>/<video>"``.

    Raises:
        JhmdbFormatError: the file is missing or unreadable, a line is in neither format (or not in
            the format of the first line), a JHMDB-format video is not found (or found in several
            classes), or the file selects no video. Line errors name the file and the line number.
    """
    root, split_path = Path(root), Path(split_path)
    if not split_path.is_file():
        raise JhmdbFormatError(f"{split_path}: split file not found")
    try:
        text = split_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JhmdbFormatError(f"{split_path}: cannot read split file as UTF-8 text: {exc}") from exc
    names: list[str] = []
    seen: set[str] = set()
    fmt: str | None = None
    lines = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        rows = line.split()
        if not rows:
            continue
        lines += 1
        is_jhmdb = len(rows) == 2 and rows[0].lower().endswith(".avi")
        line_fmt = "jhmdb" if is_jhmdb else "crw"
        if len(rows) != 2:
            raise JhmdbFormatError(
                f"{split_path}, line {lineno}: expected '<frame folder> <joint_positions.mat>' or "
                f"'<video>.avi <1|2>', found {line.strip()!r}"
            )
        if fmt is None:
            fmt = line_fmt
        elif fmt != line_fmt:
            expected = "'<video>.avi <1|2>'" if fmt == "jhmdb" else "'<frame folder> <joint_positions.mat>'"
            raise JhmdbFormatError(
                f"{split_path}, line {lineno}: expected {expected} like the first line, found {line.strip()!r}"
            )
        if fmt == "jhmdb":
            if rows[1] not in ("1", "2"):
                raise JhmdbFormatError(
                    f"{split_path}, line {lineno}: expected '<video>.avi <1|2>' (1 = train, 2 = test), "
                    f"found {line.strip()!r}"
                )
            if rows[1] != "2":
                continue
            name = _find_class(root, split_path, lineno, rows[0][: -len(".avi")])
        else:
            name = _name_from_crw_line(split_path, lineno, rows[0], rows[1])
        if name in seen:
            logger.warning("%s, line %d: video %r listed more than once; keeping the first", split_path, lineno, name)
            continue
        seen.add(name)
        names.append(name)
    if not names:
        found = "no lines" if lines == 0 else f"{lines} line(s) but no test video (2)"
        raise JhmdbFormatError(f"{split_path}: expected at least one video in the split file, found {found}")
    return names


# --------------------------------------------------------------------------------------------- files


def read_frame(path: PathLike) -> np.ndarray:
    """Read one frame as RGB, fully decoded.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        JhmdbFormatError: the file is missing, not an image, or truncated.
    """
    return read_rgb(path, error=JhmdbFormatError, what="PNG frame")


def read_pos_img(path: PathLike) -> np.ndarray:
    """Read ``pos_img`` of a ``joint_positions.mat``.

    Args:
        path: a MATLAB 5 ``.mat`` file.

    Returns:
        (2, 15, T) float64, 1-based pixel coordinates ``[x; y]``.

    Raises:
        JhmdbFormatError: the file is missing or not a readable MATLAB 5 file, has no ``pos_img``
            (the variables found are listed), or ``pos_img`` is not a (2, 15, T) array of finite
            numbers with T >= 1.
    """
    import scipy.io  # imported here: only the reader needs it

    path = Path(path)
    if not path.is_file():
        raise JhmdbFormatError(f"{path}: joint positions not found (expected a MATLAB file holding pos_img)")
    try:
        content = scipy.io.loadmat(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises many types (MatReadError, IndexError, ...) on bad files
        raise JhmdbFormatError(
            f"{path}: expected a readable MATLAB 5 .mat file holding pos_img, found an unreadable file ({exc})"
        ) from exc
    if "pos_img" not in content:
        variables = sorted(k for k in content if not k.startswith("__"))
        raise JhmdbFormatError(
            f"{path}: expected a variable 'pos_img' (2 x 15 x T joint positions), found "
            f"{', '.join(variables) if variables else 'no variables'}"
        )
    raw = np.asarray(content["pos_img"])
    if raw.ndim != 3 or raw.shape[:2] != (2, 15) or raw.shape[2] < 1:
        raise JhmdbFormatError(
            f"{path}: expected pos_img of shape (2, 15, T) with T >= 1 ([x; y] of the 15 joints per frame), "
            f"found shape {raw.shape}"
        )
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise JhmdbFormatError(f"{path}: expected numeric pos_img, found dtype {raw.dtype}")
    pos_img = raw.astype(np.float64)
    if not np.isfinite(pos_img).all():
        bad = int((~np.isfinite(pos_img)).sum())
        raise JhmdbFormatError(f"{path}: expected finite joint positions in pos_img, found {bad} NaN/inf value(s)")
    return pos_img


# --------------------------------------------------------------------------------------------- videos


@dataclass(eq=False)
class JhmdbVideo:
    """A validated JHMDB video whose frames are read lazily (see :func:`iter_frames`).

    Attributes:
        name: ``"<class>/<video>"``.
        frame_paths: PNG frames in the official order (length T).
        mat_path: its ``joint_positions.mat``.
        pos_img: (2, 15, T) float64 ground truth ``[x; y]``, 1-based pixels (JHMDB's own array).
        size: (H, W) of the first frame.
    """

    name: str
    frame_paths: list[Path]
    mat_path: Path
    pos_img: np.ndarray
    size: tuple[int, int]

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.frame_paths)

    def __len__(self) -> int:
        """Number of frames T."""
        return len(self.frame_paths)


def load_video(root: PathLike, name: str) -> JhmdbVideo:
    """Validate one video and read its joint positions.

    Checks, before any long work: the frame folder exists and holds numbered PNGs; the first frame
    is a readable image; the ``.mat`` is readable and holds a finite (2, 15, T) ``pos_img``; T equals
    the number of frames.

    Args:
        root: dataset root.
        name: ``"<class>/<video>"``.

    Returns:
        The validated :class:`JhmdbVideo`.

    Raises:
        JhmdbFormatError: any check fails (the file or folder is named, with what was expected and
            what was found).
    """
    folder = frame_folder(root, name)
    frames = list_frame_files(folder)
    first = read_frame(frames[0])
    size = (int(first.shape[0]), int(first.shape[1]))
    mat = mat_path(root, name)
    pos_img = read_pos_img(mat)
    if pos_img.shape[2] != len(frames):
        raise JhmdbFormatError(
            f"{mat}: expected joint positions for every frame of {folder} ({len(frames)} PNG frames), found "
            f"pos_img with T = {pos_img.shape[2]}"
        )
    logger.debug("Loaded JHMDB video %s: %d frames, size %s", name, len(frames), size)
    return JhmdbVideo(name=name, frame_paths=frames, mat_path=mat, pos_img=pos_img, size=size)


def iter_frames(video: JhmdbVideo) -> Iterator[np.ndarray]:
    """Yield the frames of a video in order, checking each one.

    Yields:
        (H, W, 3) uint8 RGB with (H, W) == ``video.size``.

    Raises:
        JhmdbFormatError: a frame is unreadable or its size differs from the first frame's.
    """
    for path in video.frame_paths:
        frame = read_frame(path)
        if frame.shape[:2] != tuple(video.size):
            raise JhmdbFormatError(
                f"{path}: expected frame size (H, W) = {tuple(video.size)} like {video.frame_paths[0]}, "
                f"found {frame.shape[:2]}"
            )
        yield frame
