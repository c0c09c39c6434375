"""Deterministic generator of a small synthetic dataset in the VIP (VIP_Fine) layout.

Each video shows one textured, human-like figure walking across a textured background seen by a
slowly panning camera. The figure is made of part regions with VIP class ids
(:data:`sfc.evaluation.vip.reader.CLASSES`): hair 2, face 13, upper-clothes 4, pants 8, right/left
arm 14/15, right/left leg 16/17, right/left shoe 18/19, each with its own striped colour texture that
moves with the figure; arms and legs swing with the walk. Every frame gets a gray (mode ``'L'``)
``Category_ids`` PNG, with a few void (255) pixels on part borders as in real annotations.

Layout written::

    <root>/VIP_Fine/Images/demo-XX/000000000001.jpg ...
    <root>/VIP_Fine/Annotations/Category_ids/demo-XX/000000000001.png ...
    <root>/lists/val_videos.txt          the video list (``vip.split: lists/val_videos.txt``)
    <root>/demo_vip_meta.json            the arguments, written last

Output is byte-identical for identical arguments (fixed RNG streams, fixed JPEG quality, PIL
encoders); a rerun with the same arguments on a complete dataset is a no-op. Tests call
:func:`make_demo_vip` with the defaults (2 videos x 8 frames of 120 x 160, well under a second).
"""

from __future__ import annotations

import colorsys
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sfc.atomic import write_text
from sfc.data.demo_common import is_complete
from sfc.evaluation.vip.reader import ANNOTATIONS_DIR, IGNORE, IMAGES_DIR, VipFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_VIP_META_FILE",
    "DEMO_VIP_PARTS",
    "VIDEO_LIST",
    "demo_video_names",
    "make_demo_vip",
    "render_demo_video",
]

#: Name of the file (in the dataset root) that records the generator arguments.
DEMO_VIP_META_FILE = "demo_vip_meta.json"
#: The video list, relative to the dataset root.
VIDEO_LIST = Path("lists") / "val_videos.txt"
#: Bumped whenever the rendered content changes, so old datasets are regenerated.
GENERATOR_VERSION = 1
JPEG_QUALITY = 90
MIN_SIZE = 48
#: Part ids drawn, back to front (VIP class ids).
DEMO_VIP_PARTS: tuple[int, ...] = (16, 17, 18, 19, 8, 4, 14, 15, 13, 2)


def demo_video_names(n_videos: int) -> list[str]:
    """Names of the demo videos: ``demo-00``, ``demo-01``, ..."""
    return [f"demo-{i:02d}" for i in range(n_videos)]


def frame_name(t: int) -> str:
    """VIP-style frame stem of frame ``t`` (0-based): ``000000000001``, ..."""
    return f"{t + 1:012d}"


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 smooth colour field in [0, 255]: a random grid upsampled bicubically."""
    grid = rng.integers(0, 256, size=(max(2, cells[0]), max(2, cells[1]), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((shape[1], shape[0]), Image.Resampling.BICUBIC), np.float32)


def _capsule(yy: np.ndarray, xx: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], r: float) -> np.ndarray:
    """Pixels within ``r`` of the segment p0-p1 ((y, x) points)."""
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((yy - p0[0]) * dy + (xx - p0[1]) * dx) / max(dy * dy + dx * dx, 1e-9), 0.0, 1.0)
    return (yy - p0[0] - t * dy) ** 2 + (xx - p0[1] - t * dx) ** 2 <= r * r


def _ellipse(yy: np.ndarray, xx: np.ndarray, c: tuple[float, float], ry: float, rx: float) -> np.ndarray:
    return ((yy - c[0]) / ry) ** 2 + ((xx - c[1]) / rx) ** 2 <= 1.0


def _part_styles(rng: np.random.Generator) -> dict[int, tuple[np.ndarray, np.ndarray, float, float, float]]:
    """Per part: (base colour, stripe colour, stripe angle, stripe period in figure units, phase)."""
    hues = (rng.random() + np.arange(len(DEMO_VIP_PARTS)) / len(DEMO_VIP_PARTS)) % 1.0
    rng.shuffle(hues)
    styles = {}
    for part, hue in zip(DEMO_VIP_PARTS, hues, strict=True):
        base = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.95)), np.float32) * 255
        alt = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.9)),
                       np.float32) * 255
        styles[part] = (base, alt, float(rng.uniform(0, np.pi)), float(rng.uniform(0.04, 0.09)),
                        float(rng.uniform(0, 2 * np.pi)))
    return styles


def render_demo_video(
    seed: int, index: int, n_frames: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Render one demo video in memory.

    Args:
        seed: dataset seed.
        index: video index (video ``i`` only depends on ``(seed, i)``).
        n_frames: number of frames T (>= 1).
        size: (H, W) of the frames.

    Returns:
        frames: (T, H, W, 3) uint8 RGB (before JPEG compression).
        labels: (T, H, W) uint8 part ids (0 background, :data:`DEMO_VIP_PARTS`, 255 void on borders).
    """
    h, w = size
    rng = np.random.default_rng([seed, index, 7])
    margin = int(0.12 * max(h, w)) + 2
    canvas = 0.6 * _smooth_noise(rng, (h + 2 * margin, w + 2 * margin), ((h + 2 * margin) // 24, (w + 2 * margin) // 24))
    canvas += 0.4 * _smooth_noise(rng, canvas.shape[:2], ((h + 2 * margin) // 6, (w + 2 * margin) // 6))
    canvas = 0.55 * canvas + 0.45 * canvas.mean(axis=-1, keepdims=True) + 15.0  # muted
    pan = rng.uniform(-1, 1, size=2) * margin * 0.8
    styles = _part_styles(rng)

    s = float(rng.uniform(0.8, 0.9)) * h  # figure height in pixels
    direction = 1.0 if rng.random() < 0.5 else -1.0
    x_start = w / 2 - direction * rng.uniform(0.08, 0.15) * w
    x_end = w / 2 + direction * rng.uniform(0.08, 0.15) * w
    top0 = (h - s) / 2
    cycles = float(rng.uniform(0.6, 1.0))
    void_rng = np.random.default_rng([seed, index, 255])

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.zeros((n_frames, h, w, 3), np.uint8)
    labels = np.zeros((n_frames, h, w), np.uint8)
    for t in range(n_frames):
        u = t / (n_frames - 1) if n_frames > 1 else 0.0
        cx = x_start + (x_end - x_start) * u
        top = top0 + 0.02 * s * np.sin(4 * np.pi * u)
        swing = 0.4 * np.sin(2 * np.pi * cycles * u)
        y = lambda f: top + f * s  # noqa: E731  (figure units -> pixels)

        lab = np.zeros((h, w), np.uint8)
        hips = {16: cx - 0.06 * s, 17: cx + 0.06 * s}
        feet = {}
        for part, sign in ((16, 1.0), (17, -1.0)):
            a = sign * swing
            p0 = (y(0.58), hips[part])
            p1 = (p0[0] + 0.32 * s * np.cos(a), p0[1] + 0.32 * s * np.sin(a))
            feet[part] = p1
            lab[_capsule(yy, xx, p0, p1, 0.06 * s)] = part
        for shoe, leg in ((18, 16), (19, 17)):
            fy, fx = feet[leg]
            lab[_ellipse(yy, xx, (fy + 0.03 * s, fx + direction * 0.03 * s), 0.04 * s, 0.075 * s)] = shoe
        lab[_ellipse(yy, xx, (y(0.55), cx), 0.08 * s, 0.14 * s)] = 8  # pants
        lab[_ellipse(yy, xx, (y(0.38), cx), 0.17 * s, 0.16 * s)] = 4  # upper-clothes
        for part, sign in ((14, -1.0), (15, 1.0)):
            a = -sign * swing * 0.8
            p0 = (y(0.27), cx + sign * 0.15 * s)
            p1 = (p0[0] + 0.3 * s * np.cos(a), p0[1] + 0.3 * s * np.sin(a) + sign * 0.04 * s)
            lab[_capsule(yy, xx, p0, p1, 0.05 * s)] = part
        lab[_ellipse(yy, xx, (y(0.12), cx), 0.09 * s, 0.075 * s)] = 13  # face
        hair = _ellipse(yy, xx, (y(0.09), cx), 0.085 * s, 0.085 * s) & (yy < y(0.09))
        lab[hair] = 2

        oy, ox = margin + pan[0] * u, margin + pan[1] * u
        iy, ix = int(round(oy)), int(round(ox))
        img = canvas[iy:iy + h, ix:ix + w].copy()
        lu, lv = (xx - cx) / s, (yy - top) / s  # figure-local coordinates: textures move with the figure
        for part, (base, alt, angle, period, phase) in styles.items():
            m = lab == part
            if not m.any():
                continue
            proj = lu[m] * np.cos(angle) + lv[m] * np.sin(angle)
            mix = (0.5 + 0.5 * np.sin(2 * np.pi * proj / period + phase))[:, None]
            img[m] = base * (1 - 0.7 * mix) + alt * 0.7 * mix
        img += rng.normal(0.0, 4.0, size=img.shape).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)

        border = np.zeros((h, w), bool)
        border[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        border[:-1, :] |= lab[:-1, :] != lab[1:, :]
        lab[border & (void_rng.random((h, w)) < 0.15)] = IGNORE
        labels[t] = lab
    return frames, labels


def _meta(n_videos: int, n_frames: int, size: tuple[int, int], seed: int) -> dict[str, object]:
    return {
        "generator": "sfc.data.demo_vip",
        "version": GENERATOR_VERSION,
        "n_videos": n_videos,
        "n_frames": n_frames,
        "size": [size[0], size[1]],
        "seed": seed,
        "videos": demo_video_names(n_videos),
        "video_list": VIDEO_LIST.as_posix(),
    }


def _is_complete(root: Path, meta: dict[str, object]) -> bool:
    """True when ``root`` holds a full dataset generated with exactly ``meta``."""
    n_frames = int(str(meta["n_frames"]))
    names = demo_video_names(int(str(meta["n_videos"])))
    return is_complete(
        root / DEMO_VIP_META_FILE,
        meta,
        files=[root / VIDEO_LIST],
        counts=[(root / IMAGES_DIR / n, "*.jpg", n_frames) for n in names]
        + [(root / ANNOTATIONS_DIR / n, "*.png", n_frames) for n in names],
    )


def make_demo_vip(
    root: str | os.PathLike[str],
    *,
    n_videos: int = 2,
    n_frames: int = 8,
    size: tuple[int, int] = (120, 160),
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small synthetic dataset in the VIP_Fine layout (see the module docstring).

    If ``root`` already holds a complete dataset made with the same arguments, nothing is written
    (unless ``overwrite``). A previous demo dataset with other arguments is replaced. A folder that
    holds a VIP dataset *not* made by this function is refused unless ``overwrite`` is set (then only
    the ``demo-XX`` videos and the video list are written).

    Args:
        root: dataset root (created if needed).
        n_videos: number of videos (>= 1).
        n_frames: frames per video (>= 1).
        size: (H, W) of the frames, each >= 48.
        seed: RNG seed; identical arguments give byte-identical files.
        overwrite: regenerate even when an identical dataset is present.

    Returns:
        The dataset root.

    Raises:
        ValueError: invalid arguments.
        VipFormatError: ``root`` holds a non-demo VIP dataset and ``overwrite`` is False.
    """
    if n_videos < 1 or n_frames < 1:
        raise ValueError(f"expected n_videos >= 1 and n_frames >= 1, found {n_videos} and {n_frames}")
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ValueError(f"expected size (H, W) with both >= {MIN_SIZE}, found {tuple(size)}")
    root = Path(root)
    size = (int(size[0]), int(size[1]))
    meta = _meta(n_videos, n_frames, size, seed)
    if not overwrite and _is_complete(root, meta):
        logger.info("Demo VIP dataset already complete at %s (same arguments); skipping", root)
        return root

    meta_path = root / DEMO_VIP_META_FILE
    old_names: list[str] = []
    if meta_path.is_file():
        try:
            old_names = list(json.loads(meta_path.read_text(encoding="utf-8")).get("videos", []))
        except (OSError, ValueError, AttributeError):
            old_names = []
        meta_path.unlink()  # incomplete until the new meta file is written
    elif (root / IMAGES_DIR).is_dir() and any((root / IMAGES_DIR).iterdir()) and not overwrite:
        raise VipFormatError(
            f"{root}: expected an empty folder or a demo dataset (with {DEMO_VIP_META_FILE}), found a VIP dataset "
            "not made by make_demo_vip; pass overwrite=True or choose another folder"
        )
    names = demo_video_names(n_videos)
    stale = {n for n in old_names if isinstance(n, str) and re.fullmatch(r"demo-\d+", n)} | set(names)
    for name in sorted(stale):
        for folder in (root / IMAGES_DIR / name, root / ANNOTATIONS_DIR / name):
            if folder.is_dir():
                shutil.rmtree(folder)

    t0 = time.perf_counter()
    for index, name in enumerate(names):
        frames, labels = render_demo_video(seed, index, n_frames, size)
        image_dir, label_dir = root / IMAGES_DIR / name, root / ANNOTATIONS_DIR / name
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for t in range(n_frames):
            stem = frame_name(t)
            Image.fromarray(frames[t]).save(image_dir / f"{stem}.jpg", format="JPEG", quality=JPEG_QUALITY,
                                            subsampling=0, optimize=False)
            Image.fromarray(labels[t]).save(label_dir / f"{stem}.png", format="PNG")
    write_text(root / VIDEO_LIST, "".join(f"{n}\n" for n in names))
    write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last: marks the dataset complete
    logger.info("Wrote demo VIP dataset to %s: %d videos x %d frames of %dx%d in %.2f s", root, n_videos, n_frames,
                size[0], size[1], time.perf_counter() - t0)
    return root
