"""Joints <-> label maps on the feature grid, exactly as the official CRW JHMDB code.

Encoding (``videowalk/code/data/jhmdb.py``): each frame is squashed to the input size (H', W')
(320 x 320 in the official protocol, aspect not kept), the 1-based JHMDB coordinates are mapped to the
stride-8 feature grid (:func:`feature_coords`), and each joint is drawn on its own channel of an
``(h, w)`` map, ``h = ceil(H' / 8)``, ``w = ceil(W' / 8)``, with the official ``draw_labelmap_np``
(:func:`draw_labelmap`: a fixed 4 x 4 Gaussian patch placed with Python ``int()`` truncation, so
that points near the top/left border are shifted and clipped; see the README of the golden outputs).
Channel 0 is the background (:func:`encode_joints`).

Decoding (``videowalk/code/utils/test_utils.py::process_pose``): per joint channel, the top-3 values
of the soft map (``torch.topk``, whose order among ties decides the last bits) are normalised to sum
to 1 and weight their pixel coordinates; an all-zero channel gives ``(-1, -1)`` (:func:`decode_joints`).

With the official input size 320 x 320 everything here equals the official code bit for bit (checked
against its outputs by ``tests/golden/test_golden_pck.py``); other input sizes use the same formulas
with the grid ``ceil(H' / stride) x ceil(W' / stride)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "SIGMA",
    "STRIDE",
    "TOPK",
    "decode_joints",
    "draw_labelmap",
    "encode_joints",
    "feature_coords",
    "grid_size",
]

#: Gaussian sigma of the official encoding (``JhmdbSet(args, sigma=0.5)``).
SIGMA = 0.5
#: Output stride of the official backbone (``args.mapScale = [8, 8]``).
STRIDE = 8
#: Pixels per joint of the official decoding (``process_pose(..., topk=3)``).
TOPK = 3


def grid_size(input_hw: tuple[int, int], stride: int = STRIDE) -> tuple[int, int]:
    """Label-map (feature-grid) size of an input of (H', W') pixels: ``(ceil(H'/stride), ceil(W'/stride))``."""
    return math.ceil(int(input_hw[0]) / stride), math.ceil(int(input_hw[1]) / stride)


def draw_labelmap(m: np.ndarray, pt: tuple[float, float] | np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Draw one joint on a map, in place: the official ``draw_labelmap_np`` (type ``'Gaussian'``).

    The patch is ``(6 sigma + 1)`` pixels wide (4 x 4 for sigma 0.5), with its peak 1 at its index
    ``size // 2`` (not centred on the sub-pixel point). Its upper-left corner is
    ``int(pt - 3 sigma)`` with Python ``int()`` (truncation toward zero, not floor), its lower-right
    (exclusive) ``int(pt + 3 sigma + 1)``; nothing is drawn when the patch lies entirely outside;
    the visible part is *assigned* (not max-ed) into ``m``.

    Args:
        m: (h, w) float map, modified in place (a view such as ``maps[:, :, j]`` works).
        pt: ``(x_f, y_f)`` on the map's grid (x = column).
        sigma: Gaussian sigma in grid cells.

    Returns:
        ``m`` itself.
    """
    ul = [int(pt[0] - 3 * sigma), int(pt[1] - 3 * sigma)]
    br = [int(pt[0] + 3 * sigma + 1), int(pt[1] + 3 * sigma + 1)]
    if ul[0] >= m.shape[1] or ul[1] >= m.shape[0] or br[0] < 0 or br[1] < 0:
        return m
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, float)
    y = x[:, np.newaxis]
    x0 = y0 = size // 2
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    g_x = max(0, -ul[0]), min(br[0], m.shape[1]) - ul[0]
    g_y = max(0, -ul[1]), min(br[1], m.shape[0]) - ul[1]
    m_x = max(0, ul[0]), min(br[0], m.shape[1])
    m_y = max(0, ul[1]), min(br[1], m.shape[0])
    m[m_y[0] : m_y[1], m_x[0] : m_x[1]] = g[g_y[0] : g_y[1], g_x[0] : g_x[1]]
    return m


def feature_coords(
    pos_img: np.ndarray, image_hw: tuple[int, int], input_hw: tuple[int, int], stride: int = STRIDE
) -> np.ndarray:
    """Map JHMDB's 1-based pixel coordinates to the feature grid of the resized input.

    ``x_f = (x - 1) * W' / W / stride`` and ``y_f = (y - 1) * H' / H / stride``, in float64 and in that
    order (as ``jhmdb.py``; the algebraically equal ``(x - 1) * 40 / W`` can differ in the last bit).

    Args:
        pos_img: (2, J) or (2, J, T) ``[x; y]``, 1-based pixels of the original frame.
        image_hw: (H, W) of the original frames.
        input_hw: (H', W') the frames are resized to before the network (320 x 320 officially).
        stride: output stride of the network.

    Returns:
        float64 array of ``pos_img``'s shape: ``[x_f; y_f]``, 0-based grid units.

    Raises:
        ValueError: ``pos_img``'s first axis is not 2.
    """
    coords = np.asarray(pos_img, dtype=np.float64) - 1
    if coords.shape[0] != 2:
        raise ValueError(f"expected pos_img of shape (2, J[, T]) ([x; y]), found shape {coords.shape}")
    height, width = (int(v) for v in image_hw)
    new_h, new_w = (int(v) for v in input_hw)
    coords[0] = coords[0] * float(new_w) / float(width) / stride
    coords[1] = coords[1] * float(new_h) / float(height) / stride
    return coords


def encode_joints(coords: np.ndarray, map_hw: tuple[int, int], sigma: float = SIGMA) -> np.ndarray:
    """Label map of one frame's joints: background channel then one Gaussian channel per joint.

    Args:
        coords: (2, J) ``[x_f; y_f]`` on the grid (from :func:`feature_coords`); J = 15 for JHMDB.
        map_hw: (h, w) of the grid.
        sigma: Gaussian sigma (0.5 officially).

    Returns:
        (h, w, J + 1) float32 ``[y, x, channel]``: channel ``j + 1`` is joint ``j`` drawn with
        :func:`draw_labelmap` (in float64, then cast, as the official float32 tensor); channel 0 is 1
        where every joint channel is exactly 0, else 0. A joint whose patch falls outside the grid
        leaves its channel empty (it decodes to -1 in every frame).

    Raises:
        ValueError: ``coords`` is not (2, J).
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[0] != 2:
        raise ValueError(f"expected joint coordinates of shape (2, J) ([x_f; y_f]), found shape {coords.shape}")
    h, w = (int(v) for v in map_hw)
    joints = np.zeros((h, w, coords.shape[1]), dtype=np.float64)
    for j in range(coords.shape[1]):
        draw_labelmap(joints[:, :, j], coords[:, j], sigma)
    joints32 = joints.astype(np.float32)
    background = (joints32 == 0).all(axis=-1).astype(np.float32)
    return np.concatenate([background[..., None], joints32], axis=-1)


def decode_joints(soft: torch.Tensor | np.ndarray, topk: int = TOPK) -> np.ndarray:
    """Joint coordinates of a (propagated) soft label map: the official ``process_pose``.

    Channel 0 (background) is dropped; for each joint channel the ``k = min(h * w, topk)`` largest
    values (``torch.topk`` over the flattened ``y * w + x`` index, on the CPU, in float32) are divided
    by their sum and weight their pixel coordinates, summed in ``topk`` order. A channel whose total
    is 0 gives exactly ``(-1, -1)``. Tied values are ordered as ``torch.topk`` orders them, which
    decides the last bits of the sums (see the golden README).

    Args:
        soft: (h, w, J + 1) soft labels ``[y, x, channel]`` (a tensor on any device, or an array);
            cast to float32 on the CPU (the input is not modified).
        topk: pixels per joint (3 officially).

    Returns:
        (2, J) float32 ``[x; y]`` in grid units (0-based), -1 for empty channels.

    Raises:
        ValueError: ``soft`` is not (h, w, K) with K >= 2.
    """
    if isinstance(soft, torch.Tensor):
        pred = soft.detach().to(device="cpu", dtype=torch.float32)
    else:
        pred = torch.from_numpy(np.array(soft, dtype=np.float32))
    if pred.ndim != 3 or pred.shape[-1] < 2 or pred.shape[0] * pred.shape[1] == 0:
        raise ValueError(f"expected a soft label map of shape (h, w, 1 + joints), found shape {tuple(pred.shape)}")
    pred = pred[..., 1:]
    flat = pred.flatten(0, 1)
    k = min(flat.shape[0], topk)
    vals, ids = torch.topk(flat, k=k, dim=0)
    vals /= vals.sum(0)[None]
    xx, yy = ids % pred.shape[1], ids // pred.shape[1]
    coords = torch.stack([(xx * vals).sum(0), (yy * vals).sum(0)], dim=0)
    coords[:, flat.sum(0) == 0] = -1
    return coords.numpy()
