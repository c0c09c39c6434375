"""Part labels of VIP: nearest resizing, first-frame encoding, decoding of propagated maps.

* :func:`nearest_resize` is Pillow's ``Image.resize(..., Image.NEAREST)``, index for index: the
  official ``eval_vip.py`` resizes every prediction to its ground truth's size with it. Per axis,
  destination index ``i`` reads source index ``int(s_i)``, ``s_0 = a / 2``, ``s_(i+1) = s_i + a``,
  ``a = src / dst``, accumulated in float64 (Pillow's ``ImagingScaleAffine``). The closed form
  ``floor((i + 0.5) * src / dst)`` is *not* always equal (e.g. 64 -> 458 rows, i = 343).
* :func:`encode_parts` turns the first frame's part ids into one channel per part present: the
  label image is first resized to the network input size with *nearest* interpolation, then
  one-hot encoded (``propagate_labels`` then resizes the maps bilinearly to the feature grid, as CRW).
  The official CRW loader (``data/vos.py``) means to do the same but calls
  ``cv2.resize(lbl, (h, w), cv2.INTER_NEAREST)``, where the third positional argument is ``dst``, so
  its interpolation is the default *bilinear*: part ids are averaged at boundaries and ids that are
  in no annotation (e.g. 0 and 2 give 1) become channels that can be predicted. We do not reproduce
  that bug: our channels are exactly the ids of the first annotation.
* :func:`decode_parts` is CRW's ``dump_predictions``: bilinear upsampling of the soft maps, argmax
  over the channels (ties to the first), channel -> part id. CRW upsamples to the input size
  (cropSize x cropSize) and writes that; the evaluator then NEAREST-resizes it to the annotation size.
  We upsample straight to the annotation size (one resampling instead of two; differences are
  confined to part boundaries).

Void (255) pixels of the first annotation carry no evidence: their one-hot row is all zero (no
channel of their own, not background). The official loader would make 255 a channel and could then
predict 255, which its scorer traps as an out-of-range prediction.
"""

from __future__ import annotations

import numpy as np
import torch

from sfc.evaluation.vip.reader import IGNORE, N_CLASSES
from sfc.propagation.labels import upsample_argmax

__all__ = ["decode_parts", "encode_parts", "nearest_indices", "nearest_resize"]


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of every destination index of Pillow's NEAREST resize along one axis.

    Args:
        src: source length (>= 1).
        dst: destination length (>= 1).

    Returns:
        (dst,) int64 indices in ``0..src-1``.
    """
    if src < 1 or dst < 1:
        raise ValueError(f"nearest_indices: expected sizes >= 1, found src={src}, dst={dst}")
    a = float(src) / float(dst)
    steps = np.full(dst, a, dtype=np.float64)
    steps[0] = a * 0.5
    positions = np.add.accumulate(steps)  # sequential float64 sums, like Pillow's `xo += a[0]`
    return np.minimum(positions.astype(np.int64), src - 1)


def nearest_resize(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label image exactly as ``PIL.Image.resize((w, h), Image.NEAREST)``.

    Args:
        labels: (H, W) label image (any dtype; uint8 ids in practice).
        size: (h, w) output size.

    Returns:
        (h, w) array of ``labels``'s dtype; identical to ``labels`` when the sizes match.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"nearest_resize: expected a (H, W) label image, found shape {labels.shape}")
    h, w = (int(n) for n in size)
    if (h, w) == labels.shape:
        return labels.copy()
    rows = nearest_indices(labels.shape[0], h)
    cols = nearest_indices(labels.shape[1], w)
    return labels[rows[:, None], cols[None, :]]


def encode_parts(labels: np.ndarray, input_hw: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """One-hot part maps of the first frame at the network input size.

    Args:
        labels: (H, W) uint8 part ids of the first frame (0..19, 255 void).
        input_hw: (H', W') network input size; the label image is resized to it with
            :func:`nearest_resize` (never bilinear: see the module docstring). None keeps (H, W).

    Returns:
        onehot: (H', W', K) float32; channel k is 1 where the id is ``ids[k]``; void pixels are all zero.
        ids: (K,) uint8, the sorted part ids present in ``labels`` (void excluded; background 0 only
            when present).

    Raises:
        ValueError: not a 2-D array, ids outside 0..19 other than 255, or no labelled pixel.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"encode_parts: expected (H, W) part ids, found shape {labels.shape}")
    present = np.unique(labels)
    bad = [int(v) for v in present if not (0 <= v < N_CLASSES or v == IGNORE)]
    if bad:
        raise ValueError(f"encode_parts: expected part ids 0..{N_CLASSES - 1} or {IGNORE} (void), found {bad}")
    ids = np.array([v for v in present if v != IGNORE], dtype=np.uint8)
    if ids.size == 0:
        raise ValueError(f"encode_parts: expected labelled pixels, found only void ({IGNORE})")
    resized = labels if input_hw is None else nearest_resize(labels, input_hw)
    onehot = (resized[..., None] == ids[None, None, :]).astype(np.float32)
    return onehot, ids


def decode_parts(soft: torch.Tensor | np.ndarray, ids: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Part ids from propagated soft maps (CRW ``dump_predictions``).

    Args:
        soft: (h, w, K) soft label maps on the feature grid.
        ids: (K,) part id of each channel (from :func:`encode_parts`).
        out_hw: (H, W) output size (the annotation size).

    Returns:
        (H, W) uint8 part ids: bilinear upsampling (half-pixel centres, as ``cv2.resize``), argmax
        over K (ties to the lowest channel), ``ids[argmax]``.
    """
    ids = np.asarray(ids, dtype=np.uint8)
    maps = torch.as_tensor(soft)
    if maps.ndim != 3 or maps.shape[-1] != ids.shape[0]:
        raise ValueError(
            f"decode_parts: expected (h, w, K) soft maps with K = {ids.shape[0]} channels (one per id), "
            f"found shape {tuple(maps.shape)}"
        )
    index = upsample_argmax(maps, (int(out_hw[0]), int(out_hw[1]))).cpu().numpy()
    return ids[index]
