"""Deterministic generator of a small synthetic dataset in the JHMDB layout.

Used by the tests and for a quick run of the JHMDB evaluation without the real dataset. Each video
shows a stick figure of the 15 JHMDB joints over a smooth, textured background: thick striped limbs
of distinct colours, a torso, a head, and a small disc of its own colour on every joint, so that each
joint is locally distinctive. The figure walks across the frame, bobs up and down and swings its
arms and legs smoothly; every joint stays inside the frame. The layout is the one
:mod:`sfc.evaluation.jhmdb.reader` reads::

    <root>/Rename_Images/demo/video_00/00001.png ...
    <root>/joint_positions/demo/video_00/joint_positions.mat     pos_img (2, 15, T), 1-based pixels
    <root>/splits/demo_test.txt                                  CRW list lines, paths relative to root
    <root>/demo_jhmdb_meta.json                                  the arguments, written last

Identical arguments give byte-identical files (fixed RNG streams, PIL's PNG encoder, and a fixed
header text in the ``.mat`` instead of scipy's creation date). Everything is first written into a
temporary folder inside ``root`` and then renamed into place, and the meta file is written last:
a rerun with the same arguments on a complete dataset is a no-op, and an interrupted run leaves no
half-written video behind (it is redone by the next call). Tests use small sizes, e.g.
``make_demo_jhmdb(tmp, n_videos=2, n_frames=6, size=(64, 96))``.
"""

from __future__ import annotations

import colorsys
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sfc.atomic import write_text
from sfc.data.demo_common import is_complete
from sfc.evaluation.jhmdb.reader import FRAMES_DIR, JOINTS, JOINTS_DIR, MAT_NAME, JhmdbFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "BONES",
    "DEMO_CLASS",
    "DEMO_META_FILE",
    "GENERATOR_VERSION",
    "SPLIT_FILE",
    "demo_video_names",
    "make_demo_jhmdb",
    "render_demo_video",
]

#: The class folder of every demo video.
DEMO_CLASS = "demo"
#: The split file (CRW list format), relative to the dataset root.
SPLIT_FILE = Path("splits") / "demo_test.txt"
#: Name of the file (in the dataset root) that records the generator arguments; written last.
DEMO_META_FILE = "demo_jhmdb_meta.json"
#: Bumped whenever the rendered content changes, so old datasets are regenerated.
GENERATOR_VERSION = 1
#: Smallest frame side.
MIN_SIZE = 32
#: Fixed 116-byte descriptive header of the ``.mat`` files (scipy writes the creation date there).
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by sfc.data.demo_jhmdb".ljust(116)
_TMP_PREFIX = ".demo_jhmdb.tmp-"

#: Limbs of the stick figure as (joint, joint) pairs of :data:`sfc.evaluation.jhmdb.reader.JOINTS`.
BONES: tuple[tuple[int, int], ...] = (
    (1, 5), (5, 9), (9, 13), (1, 6), (6, 10), (10, 14),  # legs
    (0, 3), (3, 7), (7, 11), (0, 4), (4, 8), (8, 12),  # arms
    (0, 2),  # neck to face
)


def demo_video_names(n_videos: int) -> list[str]:
    """Names of the demo videos: ``demo/video_00``, ``demo/video_01``, ..."""
    return [f"{DEMO_CLASS}/video_{i:02d}" for i in range(n_videos)]


# ------------------------------------------------------------------------------------------ rendering
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 smooth random colours in [0, 255]: a coarse random grid upsampled bicubically."""
    grid = rng.integers(0, 256, size=(max(2, cells[0]), max(2, cells[1]), 3), dtype=np.uint8)
    up = Image.fromarray(grid).resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Muted, textured background: (H, W, 3) float32."""
    h, w = shape
    coarse = _smooth_noise(rng, shape, (h // 40, w // 40))
    fine = _smooth_noise(rng, shape, (h // 6, w // 6))
    grey = coarse.mean(axis=-1, keepdims=True)
    return 0.55 * (0.4 * coarse + 0.6 * grey) + 0.25 * fine + 25.0


def _colour(hue: float, saturation: float = 0.85, value: float = 0.95) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32) * 255.0


def _paint_capsule(
    canvas: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    radius: float,
    colours: tuple[np.ndarray, np.ndarray],
    period: float,
) -> None:
    """Blend a striped capsule (segment p-q, ``radius`` px, antialiased) into ``canvas`` in place.

    ``p``, ``q`` are (x, y) pixel centres; stripes run across the segment with ``period`` px.
    """
    h, w = canvas.shape[:2]
    x0 = max(0, int(np.floor(min(p[0], q[0]) - radius - 1)))
    x1 = min(w, int(np.ceil(max(p[0], q[0]) + radius + 2)))
    y0 = max(0, int(np.floor(min(p[1], q[1]) - radius - 1)))
    y1 = min(h, int(np.ceil(max(p[1], q[1]) + radius + 2)))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = (q - p).astype(np.float32)
    length2 = float(d @ d)
    t = np.zeros_like(xx) if length2 == 0 else np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / length2, 0, 1)
    dist = np.hypot(xx - (p[0] + t * d[0]), yy - (p[1] + t * d[1]))
    alpha = np.clip(radius - dist + 0.5, 0, 1)[..., None]
    mix = (0.5 + 0.5 * np.sin(2 * np.pi * t * np.sqrt(length2) / period))[..., None]
    colour = colours[0] * (1 - mix) + colours[1] * mix
    crop = canvas[y0:y1, x0:x1]
    crop *= 1 - alpha
    crop += alpha * colour


def _pose(params: dict[str, np.ndarray | float], s: float) -> np.ndarray:
    """(15, 2) joint (x, y) in body units (belly at the origin, y down) at time fraction ``s``."""
    ph = params["phase"]
    om = 2 * np.pi * float(params["cycles"]) * s

    def wave(i: int, amp: float) -> float:
        return amp * float(np.sin(om + float(ph[i])))

    def limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:
        return start + length * np.array([np.sin(angle), np.cos(angle)])  # angle from straight down

    j = np.zeros((15, 2))
    j[1] = (0.0, 0.0)  # belly
    j[0] = (0.02 * np.sin(om), -0.30)  # neck
    j[2] = j[0] + (0.03 * np.sin(om + 1.0), -0.13)  # face
    j[3] = j[0] + (-0.11, 0.02)  # right shoulder (image left: the figure faces the camera)
    j[4] = j[0] + (0.11, 0.02)
    j[5] = (-0.07, 0.06)  # right hip
    j[6] = (0.07, 0.06)
    upper_r, upper_l = -0.45 + wave(0, 0.35), 0.45 + wave(1, 0.35)
    j[7] = limb(j[3], upper_r, 0.16)
    j[8] = limb(j[4], upper_l, 0.16)
    j[11] = limb(j[7], upper_r - 0.5 + wave(2, 0.4), 0.15)
    j[12] = limb(j[8], upper_l + 0.5 + wave(3, 0.4), 0.15)
    thigh_r, thigh_l = -0.12 + wave(4, 0.3), 0.12 - wave(4, 0.3)
    j[9] = limb(j[5], thigh_r, 0.21)
    j[10] = limb(j[6], thigh_l, 0.21)
    j[13] = limb(j[9], thigh_r - 0.25 + wave(5, 0.2), 0.21)
    j[14] = limb(j[10], thigh_l + 0.25 + wave(6, 0.2), 0.21)
    return j


def render_demo_video(seed: int, index: int, n_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Render one demo video and its joints.

    Args:
        seed: dataset seed.
        index: video index (each video has its own RNG stream).
        n_frames: T >= 1.
        size: (H, W) of the frames.

    Returns:
        ``(frames, pos_img)``: (T, H, W, 3) uint8 RGB and (2, 15, T) float64 ``[x; y]`` in **1-based**
        pixels (JHMDB's convention: pixel centre ``(c, r)`` is ``(c + 1, r + 1)``), every joint inside
        the frame.
    """
    h, w = (int(v) for v in size)
    rng = np.random.default_rng([seed, index, 0x4A484D])
    background = _background(rng, (h, w))
    params: dict[str, np.ndarray | float] = {
        "phase": rng.uniform(0, 2 * np.pi, size=7),
        "cycles": float(rng.uniform(0.6, 1.0)),
    }
    scale = min(0.72 * h, 0.8 * w)  # pixels per body unit
    half_w, top, bottom = 0.45 * scale, 0.52 * scale, 0.50 * scale
    x_lo, x_hi = half_w + 2, max(half_w + 2, w - 3 - half_w)
    y_lo, y_hi = top + 2, max(top + 2, h - 3 - bottom)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    x_mid = x_lo + rng.uniform(0.3, 0.7) * (x_hi - x_lo)
    travel = 0.15 * w * direction
    x_start, x_end = np.clip([x_mid - travel / 2, x_mid + travel / 2], x_lo, x_hi)
    y_base = float(np.clip(0.5 * (y_lo + y_hi) + rng.uniform(-0.05, 0.05) * h, y_lo, y_hi))
    hues = rng.uniform(0, 1, size=len(BONES) + 16)
    bone_colours = [(_colour(hues[i]), _colour(hues[i] + 0.5, 0.6, 0.7)) for i in range(len(BONES))]
    joint_colours = [_colour(float(hues[len(BONES) + i]), 1.0, 1.0) for i in range(15)]
    torso_colours = (_colour(float(hues[-1]), 0.5, 0.8), _colour(float(hues[-1]) + 0.3, 0.7, 0.6))
    head_colours = (np.array([230, 190, 160], np.float32), np.array([120, 80, 60], np.float32))

    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    pos_img = np.empty((2, 15, n_frames), dtype=np.float64)
    limb_r, joint_r = max(1.5, 0.035 * scale), max(1.2, 0.03 * scale)
    for t in range(n_frames):
        s = t / max(1, n_frames - 1)
        root = np.array([x_start + (x_end - x_start) * s, y_base + 0.02 * scale * np.sin(4 * np.pi * s)])
        joints = root + scale * _pose(params, s)
        joints = np.clip(joints, [1.0, 1.0], [w - 2.0, h - 2.0])
        canvas = background.copy()
        _paint_capsule(canvas, joints[0], (joints[5] + joints[6]) / 2, 0.09 * scale, torso_colours, 0.08 * scale)
        for (a, b), colours in zip(BONES, bone_colours, strict=True):
            _paint_capsule(canvas, joints[a], joints[b], limb_r, colours, 0.05 * scale)
        _paint_capsule(canvas, joints[2], joints[2], 0.07 * scale, head_colours, 0.05 * scale)
        for j in range(15):
            _paint_capsule(canvas, joints[j], joints[j], joint_r, (joint_colours[j], joint_colours[j]), 1.0)
        frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        pos_img[:, :, t] = joints.T + 1.0
    return frames, pos_img


# ------------------------------------------------------------------------------------------- writing
def _mat_bytes(pos_img: np.ndarray) -> bytes:
    """A MATLAB 5 file holding ``pos_img``, with a fixed header text (byte-identical reruns)."""
    import scipy.io  # imported here: only writing needs it

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"pos_img": pos_img}, do_compression=False)
    data = bytearray(buffer.getvalue())
    data[: len(MAT_HEADER)] = MAT_HEADER
    return bytes(data)


def _meta(n_videos: int, n_frames: int, size: tuple[int, int], seed: int) -> dict[str, object]:
    """The arguments that define a demo dataset (compared on rerun)."""
    return {
        "generator": "sfc.data.demo_jhmdb.make_demo_jhmdb",
        "version": GENERATOR_VERSION,
        "n_videos": n_videos,
        "n_frames": n_frames,
        "size": [int(size[0]), int(size[1])],
        "seed": seed,
        "joints": list(JOINTS),
        "videos": demo_video_names(n_videos),
        "split": SPLIT_FILE.as_posix(),
    }


def _is_complete(root: Path, meta: dict[str, object]) -> bool:
    """True when ``root`` holds a full demo dataset generated with exactly ``meta``."""
    names = demo_video_names(int(str(meta["n_videos"])))
    return is_complete(
        root / DEMO_META_FILE,
        meta,
        files=[root / SPLIT_FILE, *(root / JOINTS_DIR / n / MAT_NAME for n in names)],
        counts=[(root / FRAMES_DIR / n, "*.png", int(str(meta["n_frames"]))) for n in names],
    )


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` over ``dst`` (a folder or file), removing what ``dst`` held."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir():
        shutil.rmtree(dst)
    os.replace(src, dst)


def make_demo_jhmdb(
    root: str | os.PathLike[str],
    *,
    n_videos: int = 2,
    n_frames: int = 12,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small synthetic dataset in the JHMDB layout (see the module docstring).

    If ``root`` already holds a complete demo dataset made with the same arguments, nothing is
    written (unless ``overwrite``). A previous demo dataset with other arguments is replaced. A
    folder holding JHMDB frames *not* made by this function is refused unless ``overwrite`` is set
    (then only the ``demo`` class and the demo split file are written; other videos are left alone).

    Args:
        root: dataset root folder (created if needed).
        n_videos: number of videos (>= 1).
        n_frames: frames per video (>= 1).
        size: (H, W) of the frames, each >= 32.
        seed: RNG seed; identical arguments give byte-identical files.
        overwrite: regenerate even when an identical dataset is present.

    Returns:
        The dataset root as a :class:`~pathlib.Path`.

    Raises:
        ValueError: invalid arguments.
        JhmdbFormatError: ``root`` holds JHMDB frames not made by this function and ``overwrite`` is False.
    """
    if n_videos < 1 or n_frames < 1:
        raise ValueError(f"expected n_videos >= 1 and n_frames >= 1, found {n_videos} and {n_frames}")
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ValueError(f"expected size (H, W) with both >= {MIN_SIZE}, found {tuple(size)}")
    root = Path(root)
    size = (int(size[0]), int(size[1]))
    meta = _meta(n_videos, n_frames, size, seed)
    if not overwrite and _is_complete(root, meta):
        logger.info("Demo JHMDB dataset already complete at %s (same arguments); skipping", root)
        return root
    meta_path = root / DEMO_META_FILE
    frames_root = root / FRAMES_DIR
    if meta_path.is_file():
        meta_path.unlink()  # the dataset is incomplete until the new meta file is written
    elif frames_root.is_dir() and any(frames_root.iterdir()) and not overwrite:
        raise JhmdbFormatError(
            f"{root}: expected an empty folder or a demo dataset (with {DEMO_META_FILE}), found a JHMDB dataset "
            "not made by make_demo_jhmdb; pass overwrite=True or choose another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)

    t_start = time.perf_counter()
    tmp = root / f"{_TMP_PREFIX}{os.getpid()}"
    try:
        names = demo_video_names(n_videos)
        for index, name in enumerate(names):
            frames, pos_img = render_demo_video(seed, index, n_frames, size)
            frame_dir = tmp / FRAMES_DIR / name
            frame_dir.mkdir(parents=True)
            for t in range(n_frames):
                Image.fromarray(frames[t]).save(frame_dir / f"{t + 1:05d}.png", format="PNG", compress_level=1)
            mat_dir = tmp / JOINTS_DIR / name
            mat_dir.mkdir(parents=True)
            (mat_dir / MAT_NAME).write_bytes(_mat_bytes(pos_img))
        lines = [f"{(FRAMES_DIR / n).as_posix()} {(JOINTS_DIR / n / MAT_NAME).as_posix()}\n" for n in names]
        (tmp / SPLIT_FILE).parent.mkdir(parents=True)
        (tmp / SPLIT_FILE).write_text("".join(lines), encoding="utf-8")
        for rel in (FRAMES_DIR / DEMO_CLASS, JOINTS_DIR / DEMO_CLASS, SPLIT_FILE):
            _replace(tmp / rel, root / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last: marks the dataset complete
    logger.info(
        "Wrote demo JHMDB dataset to %s: %d videos x %d frames of %dx%d in %.2f s",
        root, n_videos, n_frames, size[0], size[1], time.perf_counter() - t_start,
    )
    return root
