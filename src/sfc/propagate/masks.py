"""First-frame masks for ``sfc propagate``: id PNGs and the polygon/box JSON of labelling tools.

Accepted inputs (see docs/propagate.md for examples):

* **PNG** (any image Pillow reads; PNG is the lossless one): a palette (``P``) or greyscale (``L``,
  16-bit ``I;16``) image whose pixel values are object ids (0 = background); a binary image (mode
  ``1``, or values exactly {0, 255} / {0, 65535}) is one object, id 1; an RGB(A) image whose
  colours are DAVIS palette colours (a palette PNG saved as RGB) maps each colour to its palette
  index, and an RGB(A) image with a single non-black colour is one object (transparent = background).
* **COCO JSON** (CVAT, Label Studio and most tools export it): ``images`` (``width``, ``height``)
  and ``annotations`` with ``segmentation`` polygons (``[[x, y, x, y, ...], ...]``), uncompressed
  RLE (``{"size": [h, w], "counts": [...]}``) or only a ``bbox`` ``[x, y, w, h]``. The first image
  that has annotations is the first frame; each annotation is one object, ids 1, 2, ... in order.
* **Label Studio JSON** (its own export: a list of tasks, or one task / annotation): the ``result``
  items of type ``polygonlabels`` / ``polygon`` (``value.points``, percent of the image size) and
  ``rectanglelabels`` / ``rectangle`` (``value.x``, ``y``, ``width``, ``height`` in percent,
  ``rotation`` in degrees clockwise about the top-left corner), with ``original_width`` /
  ``original_height``; each region is one object, ids 1, 2, ... in order.
* **The simple form**: ``{"width": W, "height": H, "objects": [{"id": 1, "polygon": [[x, y], ...]},
  {"id": 2, "box": [x0, y0, x1, y1]}]}`` (pixels; a box covers ``x0 <= x < x1``; an optional
  ``"label"`` per object).

Coordinates are pixels with (0, 0) the top-left corner of the image. Polygons are filled with
Pillow's ``ImageDraw.polygon`` (vertices rounded to whole pixels, the outline included), boxes cover
whole pixels ``round(x0) .. round(x1) - 1``; later objects are drawn over earlier ones.

A mask is never resized: its size must be the video's frame size, else :class:`PropagateInputError`
names both sizes. A mask with no object, a JSON with no polygon or box, an object that covers no
pixel, or a JSON of another layout are errors as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from sfc.evaluation.davis.reader import DAVIS_PALETTE
from sfc.propagate.errors import PropagateInputError

logger = logging.getLogger(__name__)

__all__ = ["FirstMask", "ObjectInfo", "read_first_mask"]

PathLike = str | os.PathLike[str]

#: More distinct ids than this in an image mask earns a warning (anti-aliased or JPEG-compressed masks).
_MANY_IDS = 20
_LS_POLYGON = ("polygonlabels", "polygon")
_LS_RECTANGLE = ("rectanglelabels", "rectangle")


@dataclass(frozen=True)
class ObjectInfo:
    """One object of the first-frame mask.

    Attributes:
        id: its id in the mask and in every output PNG (1..255).
        label: its class name when the input has one (JSON labels), else None.
        source: where it came from (``pixel value 3``, ``COCO annotation id 17``, ``objects[0]``...).
    """

    id: int
    label: str | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "source": self.source}


@dataclass(frozen=True)
class FirstMask:
    """The first-frame mask of a video.

    Attributes:
        ids: (H, W) uint8 object ids, 0 = background.
        objects: the objects, in id order.
        format: ``palette-png``, ``greyscale-png``, ``binary-png``, ``rgb-png``, ``coco``,
            ``label-studio`` or ``simple-json``.
        path: the file it was read from.
    """

    ids: np.ndarray
    objects: tuple[ObjectInfo, ...]
    format: str
    path: Path

    @property
    def object_ids(self) -> list[int]:
        """Object ids in channel order (channel 0 is the background)."""
        return [o.id for o in self.objects]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.ids.shape[0]), int(self.ids.shape[1])

    def sha256(self) -> str:
        """SHA-256 of the rasterised mask (size, ids): equal for a PNG and a JSON drawing the same mask."""
        h = hashlib.sha256(json.dumps([list(self.size), self.object_ids]).encode())
        h.update(np.ascontiguousarray(self.ids, dtype=np.uint8).tobytes())
        return h.hexdigest()


def _size_text(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]} (W x H)"


def _check_size(path: Path, mask_hw: tuple[int, int], frame_size: tuple[int, int] | None) -> None:
    if frame_size is not None and tuple(mask_hw) != tuple(frame_size):
        raise PropagateInputError(
            f"{path}: the mask is {_size_text(mask_hw)} but the video's frames are {_size_text(frame_size)}; "
            "draw or export the mask at the video's resolution (masks are never resized)"
        )


def _finish(path: Path, ids: np.ndarray, objects: list[ObjectInfo], fmt: str) -> FirstMask:
    """Check that every object is visible and at least one exists; sort objects by id."""
    if not objects:
        raise PropagateInputError(f"{path}: expected at least one object in the first-frame mask, found none "
                                  "(every pixel is background, id 0)")
    present = set(np.unique(ids).tolist())
    for obj in objects:
        if obj.id not in present:
            raise PropagateInputError(
                f"{path}: object {obj.id} ({obj.source}) covers no pixel of the {_size_text(ids.shape)} mask "
                "(outside the image, too thin, or hidden under a later object)"
            )
    if len(objects) > _MANY_IDS:
        logger.warning("%s: %d objects; is this an anti-aliased or JPEG-compressed mask? Object ids must be exact "
                       "pixel values", path, len(objects))
    objects = sorted(objects, key=lambda o: o.id)
    logger.info("First-frame mask %s (%s): %d object(s), ids %s", path, fmt, len(objects), [o.id for o in objects])
    return FirstMask(np.ascontiguousarray(ids, dtype=np.uint8), tuple(objects), fmt, path)


# ------------------------------------------------------------------------------------------ images
def _ids_from_values(path: Path, values: np.ndarray, fmt: str, binary_value: int) -> FirstMask:
    uniq = [int(v) for v in np.unique(values)]
    if uniq == [0]:
        return _finish(path, values.astype(np.uint8), [], fmt)
    if set(uniq) <= {0, binary_value}:
        logger.info("%s: binary mask (0/%d): one object, id 1", path, binary_value)
        ids = (values == binary_value).astype(np.uint8)
        return _finish(path, ids, [ObjectInfo(1, None, f"pixel value {binary_value}")], "binary-png")
    if uniq[-1] > 255:
        raise PropagateInputError(f"{path}: expected object ids in 0..255, found values up to {uniq[-1]}")
    objects = [ObjectInfo(v, None, f"pixel value {v}") for v in uniq if v != 0]
    return _finish(path, values.astype(np.uint8), objects, fmt)


def _ids_from_rgb(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> FirstMask:
    rgb = rgb.copy()
    if alpha is not None:
        rgb[alpha == 0] = 0  # transparent = background
    flat = rgb.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    colours, inverse = np.unique(codes, return_inverse=True)
    nonblack = [int(c) for c in colours if c != 0]
    if not nonblack:
        return _finish(path, np.zeros(rgb.shape[:2], np.uint8), [], "rgb-png")
    pal = DAVIS_PALETTE.astype(np.int64)
    pal_codes = {int((r << 16) | (g << 8) | b): i for i, (r, g, b) in enumerate(pal) if i > 0}
    if all(c in pal_codes for c in nonblack):
        lut = np.array([0 if c == 0 else pal_codes[int(c)] for c in colours], dtype=np.uint8)
        ids = lut[inverse].reshape(rgb.shape[:2])
        objects = [ObjectInfo(pal_codes[c], None, f"DAVIS palette colour #{c:06x}") for c in nonblack]
        return _finish(path, ids, objects, "rgb-png")
    if len(nonblack) == 1:
        ids = (codes != 0).astype(np.uint8).reshape(rgb.shape[:2])
        return _finish(path, ids, [ObjectInfo(1, None, f"colour #{nonblack[0]:06x}")], "binary-png")
    shown = ", ".join(f"#{c:06x}" for c in nonblack[:5]) + (" ..." if len(nonblack) > 5 else "")
    raise PropagateInputError(
        f"{path}: an RGB mask must use DAVIS palette colours or a single colour on black; found "
        f"{len(nonblack)} other colours ({shown}). Save the mask as a palette or greyscale PNG of object ids"
    )


def _read_image_mask(path: Path, frame_size: tuple[int, int] | None) -> FirstMask:
    try:
        with Image.open(path) as img:
            _check_size(path, (img.height, img.width), frame_size)
            img.load()
            mode = img.mode
            if mode == "1":
                return _ids_from_values(path, np.asarray(img, dtype=np.uint8), "binary-png", 1)
            if mode == "P":
                return _ids_from_values(path, np.asarray(img, dtype=np.uint8), "palette-png", 255)
            if mode in ("L", "LA"):
                grey = img.getchannel("L") if mode == "LA" else img
                return _ids_from_values(path, np.asarray(grey, dtype=np.uint8), "greyscale-png", 255)
            if mode.startswith("I"):
                values = np.asarray(img).astype(np.int64)
                return _ids_from_values(path, values, "greyscale-png", 65535 if values.max() > 255 else 255)
            if mode in ("RGB", "RGBA"):
                arr = np.asarray(img)
                return _ids_from_rgb(path, arr[..., :3], arr[..., 3] if mode == "RGBA" else None)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: mask file not found") from exc
    except PropagateInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PropagateInputError(
            f"{path}: expected a PNG mask of object ids or a polygon/box JSON, found an unreadable image ({exc})"
        ) from exc
    raise PropagateInputError(
        f"{path}: expected a palette, greyscale, binary or RGB mask image, found image mode {mode!r}"
    )


# -------------------------------------------------------------------------------------------- JSON
@dataclass
class _Shape:
    """One object to draw: polygons (pixel (x, y) lists), boxes ((x0, y0, x1, y1)) and/or a bitmap."""

    info: ObjectInfo
    polygons: list[list[tuple[float, float]]]
    boxes: list[tuple[float, float, float, float]]
    bitmap: np.ndarray | None = None


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PropagateInputError(f"{path}: {what}: expected a number, found {value!r}")
    return float(value)


def _size_of(width: Any, height: Any, what: str, path: Path) -> tuple[int, int]:
    hw = []
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 1 or int(v) != v:
            raise PropagateInputError(f"{path}: {what}: expected a positive integer {name}, found {v!r}")
        hw.append(int(v))
    return hw[0], hw[1]


def _points(raw: Any, what: str, path: Path) -> list[tuple[float, float]]:
    """``[[x, y], ...]`` -> points; at least 3."""
    if not isinstance(raw, list) or len(raw) < 3 or not all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
        raise PropagateInputError(f"{path}: {what}: expected a polygon of at least 3 [x, y] points, found {raw!r:.120}")
    return [(_number(p[0], what, path), _number(p[1], what, path)) for p in raw]


def _flat_points(raw: Any, what: str, path: Path) -> list[tuple[float, float]]:
    """COCO ``[x, y, x, y, ...]`` -> points; at least 3."""
    if not isinstance(raw, list) or len(raw) < 6 or len(raw) % 2:
        raise PropagateInputError(
            f"{path}: {what}: expected a polygon [x1, y1, x2, y2, ...] of at least 3 points, found {raw!r:.120}"
        )
    vals = [_number(v, what, path) for v in raw]
    return list(zip(vals[0::2], vals[1::2], strict=True))


def _rle_bitmap(seg: Mapping[str, Any], hw: tuple[int, int], what: str, path: Path) -> np.ndarray:
    """Decode COCO uncompressed RLE (column-major runs, starting with background) to an (H, W) bool map."""
    counts, size = seg.get("counts"), seg.get("size")
    if isinstance(counts, str):
        raise PropagateInputError(
            f"{path}: {what}: compressed COCO RLE (a counts string) is not supported; export polygons, or "
            "uncompressed RLE (a counts list), or a PNG mask"
        )
    if not isinstance(counts, list) or not all(isinstance(c, int) and c >= 0 for c in counts):
        raise PropagateInputError(f"{path}: {what}: expected RLE counts as a list of run lengths, found {counts!r:.120}")
    if not isinstance(size, list) or [int(s) for s in size] != list(hw):
        raise PropagateInputError(f"{path}: {what}: expected RLE size [h, w] = {list(hw)} (the image's), found {size!r}")
    if sum(counts) != hw[0] * hw[1]:
        raise PropagateInputError(f"{path}: {what}: RLE run lengths sum to {sum(counts)}, expected h * w = {hw[0] * hw[1]}")
    values = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    return values.reshape(hw[1], hw[0]).T  # column-major (Fortran order), as COCO stores it


def _coco_shapes(data: Mapping[str, Any], path: Path) -> tuple[tuple[int, int], list[_Shape]]:
    images, anns = data.get("images"), data.get("annotations")
    if not isinstance(images, list) or not isinstance(anns, list) or not all(isinstance(x, dict) for x in images + anns):
        raise PropagateInputError(f"{path}: COCO JSON: expected lists of objects under 'images' and 'annotations'")
    if not images:
        raise PropagateInputError(f"{path}: COCO JSON: expected at least one entry in 'images' (width, height), found none")
    by_image: dict[Any, list[dict]] = {}
    for ann in anns:
        by_image.setdefault(ann.get("image_id", images[0].get("id") if len(images) == 1 else None), []).append(ann)
    annotated = [im for im in images if by_image.get(im.get("id"))]
    if not annotated:
        raise PropagateInputError(
            f"{path}: COCO JSON: expected annotations (polygons or boxes) of an image, found "
            f"{len(anns)} annotation(s), none of a listed image"
        )
    image = annotated[0]
    if len(annotated) > 1:
        logger.warning("%s: %d images have annotations; the first, %r (id %s), is taken as the first frame",
                       path, len(annotated), image.get("file_name"), image.get("id"))
    hw = _size_of(image.get("width"), image.get("height"), f"image {image.get('id')!r}", path)
    cats = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
    shapes = []
    for ann in by_image[image.get("id")]:
        what = f"annotation id {ann.get('id')!r}"
        seg, bbox = ann.get("segmentation"), ann.get("bbox")
        polygons, boxes, bitmap = [], [], None
        if isinstance(seg, list) and seg:
            parts = [seg] if not isinstance(seg[0], list) else seg
            polygons = [_flat_points(p, what, path) for p in parts]
        elif isinstance(seg, dict):
            bitmap = _rle_bitmap(seg, hw, what, path)
        elif isinstance(bbox, list) and len(bbox) == 4:
            x, y, w, h = (_number(v, what, path) for v in bbox)
            boxes = [(x, y, x + w, y + h)]
        else:
            logger.warning("%s: %s has neither a segmentation nor a bbox; skipped", path, what)
            continue
        label = cats.get(ann.get("category_id"))
        info = ObjectInfo(len(shapes) + 1, None if label is None else str(label), f"COCO {what}")
        shapes.append(_Shape(info, polygons, boxes, bitmap))
    return hw, shapes


def _ls_results(data: Any, path: Path) -> list[dict]:
    """The ``result`` list of the first usable annotation of a Label Studio export."""
    if isinstance(data, dict) and isinstance(data.get("result"), list):
        return data["result"]  # one annotation
    tasks = data if isinstance(data, list) else [data]
    found = []
    for task in tasks:
        if not isinstance(task, dict):
            continue
        annotations = [a for a in task.get("annotations") or task.get("completions") or []
                       if isinstance(a, dict) and not a.get("was_cancelled") and a.get("result")]
        if not annotations:  # a task with model predictions only
            annotations = [a for a in task.get("predictions") or [] if isinstance(a, dict) and a.get("result")]
        found += [a["result"] for a in annotations if isinstance(a.get("result"), list)]
    if not found:
        return []
    if len(found) > 1:
        logger.warning("%s: %d Label Studio annotations; the first is used", path, len(found))
    return found[0]


def _rotated_box(x: float, y: float, w: float, h: float, degrees: float) -> list[tuple[float, float]]:
    """Corners of a box rotated clockwise (image axes, y down) about its top-left corner (x, y)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(x + dx * c - dy * s, y + dx * s + dy * c) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]


def _label_studio_shapes(
    data: Any, path: Path, frame_size: tuple[int, int] | None
) -> tuple[tuple[int, int], list[_Shape]]:
    results = _ls_results(data, path)
    geometric = [r for r in results if isinstance(r, dict) and r.get("type") in (*_LS_POLYGON, *_LS_RECTANGLE)]
    if not geometric:
        types = sorted({str(r.get("type")) for r in results if isinstance(r, dict)})
        raise PropagateInputError(
            f"{path}: Label Studio JSON: expected a polygon or box (result types {', '.join(_LS_POLYGON + _LS_RECTANGLE)}), "
            f"found {'result types ' + ', '.join(types) if types else 'no annotation result'}"
        )
    sizes = {(r.get("original_height"), r.get("original_width")) for r in geometric} - {(None, None)}
    if len(sizes) > 1:
        raise PropagateInputError(f"{path}: Label Studio JSON: regions drawn on images of different sizes {sorted(sizes)}")
    if sizes:
        h_raw, w_raw = sizes.pop()
        hw = _size_of(w_raw, h_raw, "original_width/original_height", path)
    elif frame_size is not None:
        hw = tuple(frame_size)
        logger.info("%s: no original_width/height; percent coordinates taken on the %dx%d frames", path, hw[1], hw[0])
    else:
        raise PropagateInputError(f"{path}: Label Studio JSON: expected original_width and original_height, found none")
    shapes = []
    for r in geometric:
        what = f"result {r.get('id')!r}"
        if r.get("image_rotation"):
            raise PropagateInputError(f"{path}: {what}: regions on a rotated image (image_rotation "
                                      f"{r['image_rotation']}) are not supported")
        value = r.get("value")
        if not isinstance(value, dict):
            raise PropagateInputError(f"{path}: {what}: expected a 'value' object, found {value!r:.120}")
        sx, sy = hw[1] / 100.0, hw[0] / 100.0  # percent -> pixels
        polygons, boxes = [], []
        if r["type"] in _LS_POLYGON:
            polygons = [[(px * sx, py * sy) for px, py in _points(value.get("points"), what, path)]]
        else:
            x, y, w, h = (_number(value.get(k), f"{what} value.{k}", path) * f
                          for k, f in (("x", sx), ("y", sy), ("width", sx), ("height", sy)))
            angle = _number(value.get("rotation", 0), f"{what} value.rotation", path)
            if angle % 360:
                polygons = [_rotated_box(x, y, w, h, angle)]
            else:
                boxes = [(x, y, x + w, y + h)]
        labels = value.get("polygonlabels") or value.get("rectanglelabels") or value.get("labels")
        label = str(labels[0]) if isinstance(labels, list) and labels else None
        shapes.append(_Shape(ObjectInfo(len(shapes) + 1, label, f"Label Studio {what}"), polygons, boxes))
    return hw, shapes


def _simple_shapes(data: Mapping[str, Any], path: Path) -> tuple[tuple[int, int], list[_Shape]]:
    hw = _size_of(data.get("width"), data.get("height"), "top level", path)
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise PropagateInputError(f"{path}: expected 'objects' to be a list, found {objects!r:.120}")
    shapes, seen = [], set()
    for i, obj in enumerate(objects):
        what = f"objects[{i}]"
        if not isinstance(obj, dict):
            raise PropagateInputError(f"{path}: {what}: expected an object with 'id' and 'polygon' or 'box', found {obj!r:.120}")
        oid = obj.get("id")
        if isinstance(oid, bool) or not isinstance(oid, int) or not 1 <= oid <= 255 or oid in seen:
            raise PropagateInputError(f"{path}: {what}: expected a distinct integer id in 1..255, found {oid!r}")
        seen.add(oid)
        has_poly, has_box = "polygon" in obj, "box" in obj
        if has_poly == has_box:
            raise PropagateInputError(f"{path}: {what}: expected exactly one of 'polygon' or 'box', found {sorted(obj)}")
        polygons, boxes = [], []
        if has_poly:
            polygons = [_points(obj["polygon"], what, path)]
        else:
            box = obj["box"]
            if not isinstance(box, list) or len(box) != 4:
                raise PropagateInputError(f"{path}: {what}: expected box [x0, y0, x1, y1], found {box!r:.120}")
            boxes = [tuple(_number(v, what, path) for v in box)]  # type: ignore[list-item]
        label = obj.get("label")
        shapes.append(_Shape(ObjectInfo(oid, None if label is None else str(label), what), polygons, boxes))
    return hw, shapes


def _rasterise(hw: tuple[int, int], shapes: Sequence[_Shape]) -> np.ndarray:
    """Draw shapes in order (later over earlier) into an (H, W) uint8 id map."""
    img = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(img)
    for shape in shapes:
        oid = shape.info.id
        if shape.bitmap is not None:
            img.paste(oid, mask=Image.fromarray(shape.bitmap.astype(np.uint8) * 255))
        for poly in shape.polygons:
            draw.polygon(poly, fill=oid, outline=oid)
        for x0, y0, x1, y1 in shape.boxes:
            ix0, iy0, ix1, iy1 = round(min(x0, x1)), round(min(y0, y1)), round(max(x0, x1)), round(max(y0, y1))
            if ix1 > ix0 and iy1 > iy0:
                draw.rectangle([ix0, iy0, ix1 - 1, iy1 - 1], fill=oid)
    return np.asarray(img, dtype=np.uint8).copy()


def _read_json_mask(path: Path, frame_size: tuple[int, int] | None) -> FirstMask:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: mask file not found") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PropagateInputError(f"{path}: expected a JSON file of polygons or boxes, found invalid JSON ({exc})") from exc
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        fmt, (hw, shapes) = "coco", _coco_shapes(data, path)
    elif isinstance(data, dict) and "objects" in data:
        fmt, (hw, shapes) = "simple-json", _simple_shapes(data, path)
    elif (isinstance(data, list) and data and all(isinstance(t, dict) for t in data)
          and any(k in t for t in data for k in ("annotations", "completions", "predictions"))) or (
            isinstance(data, dict) and any(k in data for k in ("annotations", "completions", "predictions", "result"))):
        fmt, (hw, shapes) = "label-studio", _label_studio_shapes(data, path, frame_size)
    else:
        found = f"an object with keys {sorted(data)[:8]}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise PropagateInputError(
            f"{path}: unknown mask JSON layout: expected COCO ('images' + 'annotations'), a Label Studio export "
            f"(tasks with 'annotations' -> 'result'), or {{'width', 'height', 'objects'}}; found {found}"
        )
    _check_size(path, hw, frame_size)
    if not shapes:
        raise PropagateInputError(f"{path}: expected at least one polygon or box ({fmt} layout), found none")
    if len(shapes) > 255:
        raise PropagateInputError(f"{path}: at most 255 objects fit in an id mask, found {len(shapes)}")
    return _finish(path, _rasterise(hw, shapes), [s.info for s in shapes], fmt)


def read_first_mask(path: PathLike, frame_size: tuple[int, int] | None = None) -> FirstMask:
    """Read a first-frame mask: an id image (PNG) or a polygon/box JSON (``.json``).

    Args:
        path: the mask file; ``.json`` files are read as JSON, anything else as an image.
        frame_size: (H, W) of the video's frames: the mask must have this size (never resized).
            Also the size that Label Studio percent coordinates refer to when the export does not
            say. None = no check.

    Returns:
        The :class:`FirstMask`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PropagateInputError: a mask of another size than ``frame_size`` (both sizes named), no object,
            an object covering no pixel, an unreadable image or JSON, or a JSON of another layout.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: mask file not found")
    if path.suffix.lower() == ".json":
        return _read_json_mask(path, frame_size)
    return _read_image_mask(path, frame_size)
