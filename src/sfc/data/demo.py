"""Deterministic generator of a small synthetic dataset in the DAVIS-2017 layout.

Used by ``make demo`` (through ``sfc demo-data``) and by the tests. Each sequence shows a
smooth, textured background seen by a slowly panning camera, and 2-4 textured objects
(star-shaped superellipses with their own striped/noisy colour textures) that move smoothly,
rotate a little and change scale slightly. Objects are drawn in a fixed z-order; in every
sequence two of them swap places, so that the front one occludes the back one around the
middle of the sequence (as long as there are at least ~4 frames).

Every frame gets a palette PNG annotation (object ids 1..n, written with
:func:`sfc.evaluation.davis.reader.write_mask`), so the full DAVIS evaluation can run on it. Output is
byte-identical for identical arguments (fixed RNG streams, fixed JPEG quality, PIL encoders).
A ``demo_meta.json`` holding the arguments is written last; a rerun with the same arguments on a
complete dataset is a no-op. Tests call :func:`make_demo_davis` with small sizes, e.g.
``make_demo_davis(tmp, n_sequences=2, n_frames=6, size=(64, 96))`` (see :func:`make_tiny_davis`).
"""

from __future__ import annotations

import colorsys
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sfc.atomic import write_text
from sfc.data.demo_common import is_complete
from sfc.evaluation.davis.reader import ANNOTATIONS_DIR, IMAGESETS_DIR, JPEG_DIR, DavisFormatError, write_mask

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_META_FILE",
    "GENERATOR_VERSION",
    "demo_sequence_names",
    "make_demo_davis",
    "make_tiny_davis",
    "render_demo_sequence",
]

#: Name of the file (in the dataset root) that records the generator arguments.
DEMO_META_FILE = "demo_meta.json"
#: Bumped whenever the rendered content changes, so old datasets are regenerated.
GENERATOR_VERSION = 1
#: JPEG quality of the frames (fixed, for determinism).
JPEG_QUALITY = 90
MIN_SIZE = 32


@dataclass(frozen=True)
class _ObjectSpec:
    """Shape, texture and trajectory of one synthetic object (pixel units)."""

    obj_id: int
    rx: float  # half-width at scale 1
    ry: float  # half-height at scale 1
    exponent: float  # superellipse exponent (1 diamond, 2 ellipse, 4 rounded box)
    wobble_amp: np.ndarray  # (3,) radial perturbation amplitudes for harmonics 3..5
    wobble_phase: np.ndarray  # (3,)
    start: tuple[float, float]  # (y, x) centre at t = 0
    end: tuple[float, float]  # (y, x) centre at t = T - 1
    sway: tuple[float, float]  # (y, x) amplitude of a sin(2 pi s) path deviation
    scale_amp: float
    scale_phase: float
    angle0: float
    angle_speed: float  # radians over the whole sequence
    texture: np.ndarray  # (S, S, 3) float32 in object-local coordinates, centre at S / 2


def demo_sequence_names(n_sequences: int) -> list[str]:
    """Names of the demo sequences: ``demo-00``, ``demo-01``, ..."""
    return [f"demo-{i:02d}" for i in range(n_sequences)]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth random colour field: a low-resolution random grid upsampled bicubically.

    Returns:
        (H, W, 3) float32, roughly in [0, 255].
    """
    h, w = shape
    ch, cw = max(2, cells[0]), max(2, cells[1])
    grid = rng.integers(0, 256, size=(ch, cw, 3), dtype=np.uint8)
    up = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample an image at float coordinates with bilinear interpolation (clamped at the border).

    Args:
        img: (H, W, C) float32.
        ys, xs: (...) float sample coordinates in pixels.

    Returns:
        (..., C) float32.
    """
    h, w = img.shape[:2]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[..., None].astype(np.float32)
    fx = (xs - x0)[..., None].astype(np.float32)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _object_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Saturated, striped and noisy colour texture for an object.

    Returns:
        (size, size, 3) float32 in [0, 255].
    """
    hue = rng.random()
    base = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0)), np.float32)
    alt = np.array(
        colorsys.hsv_to_rgb(
            (hue + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0)
        ),
        np.float32,
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(0.15, 0.35) * size
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    noise = _smooth_noise(rng, (size, size), (max(2, size // 6), max(2, size // 6)))[..., 0] / 255.0
    mix = np.clip(0.7 * stripes + 0.5 * (noise - 0.5), 0, 1)[..., None]
    tex = 255.0 * (base * (1 - mix) + alt * mix)
    tex += rng.normal(0, 8.0, size=tex.shape).astype(np.float32)
    return np.clip(tex, 0, 255).astype(np.float32)


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Muted, smooth, textured background canvas (larger than a frame, for the pan).

    Returns:
        (H, W, 3) float32 in [0, 255].
    """
    h, w = shape
    coarse = _smooth_noise(rng, shape, (max(2, h // 48), max(2, w // 48)))
    fine = _smooth_noise(rng, shape, (max(2, h // 8), max(2, w // 8)))
    grey = coarse.mean(axis=-1, keepdims=True)
    muted = 0.45 * coarse + 0.55 * grey  # low saturation, so objects stand out
    bg = 0.75 * muted + 0.25 * fine + 20.0
    # a few soft colour blobs
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(3, 7))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sigma = rng.uniform(0.05, 0.15) * min(h, w)
        colour = rng.uniform(-40, 40, size=3).astype(np.float32)
        bg += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))[..., None] * colour
    return np.clip(bg, 0, 255).astype(np.float32)


def _plan_sequence(
    rng: np.random.Generator, size: tuple[int, int]
) -> tuple[list[_ObjectSpec], list[int], tuple[float, float]]:
    """Draw the objects, their z-order (back to front) and the camera pan (total (dy, dx) in px)."""
    h, w = size
    n_obj = int(rng.integers(2, 5))
    slot_half = w / (2 * n_obj)
    slot_centres = [(i + 0.5) * 2 * slot_half for i in range(n_obj)]
    # the crossing pair: objects in the first and last slots swap places
    cross_a, cross_b = 0, n_obj - 1
    y_cross = rng.uniform(0.42, 0.58) * h

    radii: list[tuple[float, float]] = []
    for _ in range(n_obj):
        rx = rng.uniform(0.5, 0.82) * min(slot_half, 0.3 * h)
        ry = rng.uniform(0.6, 1.3) * rx
        ry = float(min(ry, 0.24 * h))
        radii.append((float(rx), ry))

    z_order = [int(i) for i in rng.permutation(n_obj)]
    # make the front object of the crossing pair the bigger one, so it really hides the other
    front, back = (
        (cross_a, cross_b) if z_order.index(cross_a) > z_order.index(cross_b) else (cross_b, cross_a)
    )
    if radii[front][0] * radii[front][1] < radii[back][0] * radii[back][1]:
        radii[front], radii[back] = radii[back], radii[front]

    objects: list[_ObjectSpec] = []
    for i in range(n_obj):
        rx, ry = radii[i]
        y0 = float(rng.uniform(0.35, 0.65) * h)
        x0 = slot_centres[i]
        if i == cross_a:
            start, end = (y0, x0), (2 * y_cross - y0, slot_centres[cross_b])
        elif i == cross_b:
            start, end = (y0, x0), (2 * y_cross - y0, slot_centres[cross_a])
        else:
            end = (float(rng.uniform(0.35, 0.65) * h), x0 + float(rng.uniform(-0.6, 0.6) * slot_half))
            start = (y0, x0)
        tex_size = int(np.ceil(2 * 1.3 * max(rx, ry))) + 4
        objects.append(
            _ObjectSpec(
                obj_id=i + 1,
                rx=rx,
                ry=ry,
                exponent=float(rng.choice([1.2, 2.0, 2.0, 3.5])),
                wobble_amp=rng.uniform(0.0, 0.08, size=3).astype(np.float32),
                wobble_phase=rng.uniform(0, 2 * np.pi, size=3).astype(np.float32),
                start=start,
                end=end,
                sway=(float(rng.uniform(-0.05, 0.05) * h), float(rng.uniform(-0.2, 0.2) * slot_half)),
                scale_amp=float(rng.uniform(0.03, 0.08)),
                scale_phase=float(rng.uniform(0, 2 * np.pi)),
                angle0=float(rng.uniform(-0.3, 0.3)),
                angle_speed=float(rng.uniform(-0.5, 0.5)),
                texture=_object_texture(rng, tex_size),
            )
        )
    pan_dir = rng.uniform(0, 2 * np.pi)
    pan_len = rng.uniform(0.04, 0.1) * min(h, w)
    pan = (float(pan_len * np.sin(pan_dir)), float(pan_len * np.cos(pan_dir)))
    return objects, z_order, pan


def _object_pose(obj: _ObjectSpec, s: float) -> tuple[float, float, float, float]:
    """Centre (y, x), scale and angle of an object at normalised time ``s`` in [0, 1]."""
    wave = np.sin(2 * np.pi * s)  # zero at both ends and in the middle (keeps the crossing exact)
    cy = obj.start[0] + (obj.end[0] - obj.start[0]) * s + obj.sway[0] * wave
    cx = obj.start[1] + (obj.end[1] - obj.start[1]) * s + obj.sway[1] * wave
    scale = 1.0 + obj.scale_amp * np.sin(2 * np.pi * s + obj.scale_phase)
    angle = obj.angle0 + obj.angle_speed * s
    return float(cy), float(cx), float(scale), float(angle)


def render_demo_sequence(
    seed: int, index: int, n_frames: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one demo sequence in memory.

    Args:
        seed: dataset seed.
        index: sequence index (sequence ``i`` only depends on ``(seed, i)``).
        n_frames: number of frames T (>= 1).
        size: (H, W) of the frames.

    Returns:
        frames: (T, H, W, 3) uint8 RGB (before JPEG compression).
        masks: (T, H, W) uint8 visible object ids (0 = background).
        amodal: (T, K, H, W) bool full (unoccluded) silhouette of each object id 1..K, for tests
            and diagnostics of occlusion.
    """
    h, w = size
    rng = np.random.default_rng([seed, index])
    objects, z_order, pan = _plan_sequence(rng, size)
    margin = int(np.ceil(max(abs(pan[0]), abs(pan[1])))) + 2
    canvas = _background(rng, (h + 2 * margin, w + 2 * margin))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    masks = np.zeros((n_frames, h, w), dtype=np.uint8)
    amodal = np.zeros((n_frames, len(objects), h, w), dtype=bool)
    for t in range(n_frames):
        s = t / (n_frames - 1) if n_frames > 1 else 0.0
        oy = margin + pan[0] * (s - 0.5)  # camera pan: the view slides by `pan` px over the sequence
        ox = margin + pan[1] * (s - 0.5)
        img = _bilinear(canvas, yy + oy, xx + ox)
        mask = np.zeros((h, w), dtype=np.uint8)
        for k in z_order:  # back to front
            obj = objects[k]
            cy, cx, scale, angle = _object_pose(obj, s)
            # only the object's bounding box can be inside (wobble <= 1.24, superellipse <= 1.42)
            reach = 1.8 * max(obj.rx, obj.ry) * scale
            y_lo, y_hi = max(0, int(cy - reach)), min(h, int(np.ceil(cy + reach)) + 1)
            x_lo, x_hi = max(0, int(cx - reach)), min(w, int(np.ceil(cx + reach)) + 1)
            if y_lo >= y_hi or x_lo >= x_hi:
                continue
            box = (slice(y_lo, y_hi), slice(x_lo, x_hi))
            # pixel -> object-local coordinates (undo translation, rotation, scale)
            dy, dx = (yy[box] - cy) / scale, (xx[box] - cx) / scale
            ca, sa = np.cos(angle), np.sin(angle)
            u = ca * dx + sa * dy
            v = -sa * dx + ca * dy
            nu, nv = u / obj.rx, v / obj.ry
            phi = np.arctan2(nv, nu)
            radial = 1.0 + sum(
                obj.wobble_amp[j] * np.cos((j + 3) * phi + obj.wobble_phase[j]) for j in range(3)
            )
            inside = (np.abs(nu) ** obj.exponent + np.abs(nv) ** obj.exponent) <= radial**obj.exponent
            amodal[t, k][box] = inside
            if not inside.any():
                continue
            half = obj.texture.shape[0] / 2.0
            img[box][inside] = _bilinear(obj.texture, v[inside] + half, u[inside] + half)
            mask[box][inside] = obj.obj_id
        frames[t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        masks[t] = mask
    return frames, masks, amodal


def _meta(n_sequences: int, n_frames: int, size: tuple[int, int], seed: int, split: str) -> dict[str, object]:
    """The arguments that define a demo dataset (compared on rerun)."""
    return {
        "generator": "sfc.data.demo.make_demo_davis",
        "version": GENERATOR_VERSION,
        "n_sequences": n_sequences,
        "n_frames": n_frames,
        "size": [int(size[0]), int(size[1])],
        "seed": seed,
        "split": split,
        "jpeg_quality": JPEG_QUALITY,
        "sequences": demo_sequence_names(n_sequences),
    }


def _is_complete(root: Path, meta: dict[str, object]) -> bool:
    """True when ``root`` holds a full dataset generated with exactly ``meta``."""
    n_frames = int(str(meta["n_frames"]))
    names = demo_sequence_names(int(str(meta["n_sequences"])))
    return is_complete(
        root / DEMO_META_FILE,
        meta,
        files=[root / IMAGESETS_DIR / f"{meta['split']}.txt"],
        counts=[(root / JPEG_DIR / n, "*.jpg", n_frames) for n in names]
        + [(root / ANNOTATIONS_DIR / n, "*.png", n_frames) for n in names],
    )


def _remove_old_sequences(root: Path, names: list[str]) -> None:
    """Delete the frame and annotation folders of the given (demo) sequences, if present."""
    for name in names:
        for folder in (root / JPEG_DIR / name, root / ANNOTATIONS_DIR / name):
            if folder.is_dir():
                shutil.rmtree(folder)


def make_demo_davis(
    root: str | os.PathLike[str],
    *,
    n_sequences: int = 3,
    n_frames: int = 20,
    size: tuple[int, int] = (192, 320),
    seed: int = 0,
    split: str = "val",
    overwrite: bool = False,
) -> Path:
    """Write a small synthetic dataset in the DAVIS-2017 layout.

    Writes ``JPEGImages/480p/demo-XX/00000.jpg ...``, ``Annotations/480p/demo-XX/00000.png ...``
    (a palette mask on every frame), ``ImageSets/2017/<split>.txt`` and, last,
    ``demo_meta.json``. If ``root`` already holds a complete dataset made with the same
    arguments, nothing is written (unless ``overwrite``). A previous demo dataset with other
    arguments is replaced. A folder that holds a DAVIS dataset *not* made by this function is
    refused unless ``overwrite`` is set (then only the ``demo-XX`` folders and the split file are
    written; other sequences are left alone).

    Args:
        root: dataset root folder (created if needed).
        n_sequences: number of sequences (>= 1).
        n_frames: frames per sequence (>= 1; occlusions need >= 4).
        size: (H, W) of the frames, each >= 32.
        seed: RNG seed; identical arguments give byte-identical files.
        split: split file name (``ImageSets/2017/<split>.txt``).
        overwrite: regenerate even when an identical dataset is present.

    Returns:
        The dataset root as a :class:`~pathlib.Path`.

    Raises:
        ValueError: invalid arguments.
        DavisFormatError: ``root`` holds a non-demo DAVIS dataset and ``overwrite`` is False.
    """
    if n_sequences < 1 or n_frames < 1:
        raise ValueError(f"expected n_sequences >= 1 and n_frames >= 1, found {n_sequences} and {n_frames}")
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ValueError(f"expected size (H, W) with both >= {MIN_SIZE}, found {tuple(size)}")
    if not split or "/" in split or "\\" in split:
        raise ValueError(f"expected a plain split name such as 'val', found {split!r}")
    root = Path(root)
    size = (int(size[0]), int(size[1]))
    meta = _meta(n_sequences, n_frames, size, seed, split)
    if not overwrite and _is_complete(root, meta):
        logger.info("Demo DAVIS dataset already complete at %s (same arguments); skipping", root)
        return root

    meta_path = root / DEMO_META_FILE
    old_names: list[str] = []
    if meta_path.is_file():
        try:
            old_names = list(json.loads(meta_path.read_text(encoding="utf-8")).get("sequences", []))
        except (OSError, ValueError, AttributeError):
            old_names = []
        meta_path.unlink()  # the dataset is incomplete until the new meta file is written
    elif (root / JPEG_DIR).is_dir() and any((root / JPEG_DIR).iterdir()) and not overwrite:
        raise DavisFormatError(
            f"{root}: expected an empty folder or a demo dataset (with {DEMO_META_FILE}), found a DAVIS "
            f"dataset not made by make_demo_davis; pass overwrite=True or choose another folder"
        )
    names = demo_sequence_names(n_sequences)
    demo_prefix_names = [n for n in old_names if isinstance(n, str) and re.fullmatch(r"demo-\d+", n)]
    _remove_old_sequences(root, sorted(set(demo_prefix_names) | set(names)))

    t_start = time.perf_counter()
    for index, name in enumerate(names):
        frames, masks, _ = render_demo_sequence(seed, index, n_frames, size)
        jpeg_dir = root / JPEG_DIR / name
        jpeg_dir.mkdir(parents=True, exist_ok=True)
        for t in range(n_frames):
            stem = f"{t:05d}"
            Image.fromarray(frames[t]).save(
                jpeg_dir / f"{stem}.jpg", format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False
            )
            write_mask(root / ANNOTATIONS_DIR / name / f"{stem}.png", masks[t])
        logger.debug("Wrote demo sequence %s (%d frames, %d objects)", name, n_frames, int(masks[0].max()))
    split_path = root / IMAGESETS_DIR / f"{split}.txt"
    split_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(split_path, "".join(f"{n}\n" for n in names))
    write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last: marks the dataset complete
    logger.info(
        "Wrote demo DAVIS dataset to %s: %d sequences x %d frames of %dx%d in %.2f s",
        root,
        n_sequences,
        n_frames,
        size[0],
        size[1],
        time.perf_counter() - t_start,
    )
    return root


def make_tiny_davis(
    root: str | os.PathLike[str], *, n_sequences: int = 2, n_frames: int = 6, seed: int = 0
) -> Path:
    """Test-sized demo dataset: :func:`make_demo_davis` with ``size=(64, 96)`` and few frames."""
    return make_demo_davis(root, n_sequences=n_sequences, n_frames=n_frames, size=(64, 96), seed=seed)
