"""DAVIS-2017 semi-supervised J&F metrics, numerically equal to the official ``davis2017-evaluation``.

This module is an independent re-implementation (numpy only: no OpenCV / scikit-image) of the metrics
computed by https://github.com/davisvideochallenge/davis2017-evaluation for the *semi-supervised* task.
All functions are pure: they take numpy arrays and never touch files.

Conventions followed (they matter for bit-equality with the official numbers):

* **J (region similarity)** is the IoU of two boolean masks. When the union is empty (both masks
  empty, or everything is void) the frame scores ``1.0``.
* **F (boundary measure)** extracts 1-pixel boundaries, dilates each boundary by a disk of radius
  ``bound_pix = ceil(bound_th * sqrt(H**2 + W**2))`` (``bound_pix = bound_th`` when ``bound_th >= 1``),
  and forms boundary precision/recall. A pixel is a boundary pixel when it differs from its right,
  bottom or bottom-right neighbour *inside the image*: the image border itself is never a boundary, so
  a mask covering the whole frame has no boundary at all. Empty-boundary cases: no predicted and no
  ground-truth boundary gives F = 1; exactly one of them empty gives F = 0.
* **Statistics** per object over the evaluated frames: Mean = ``nanmean``; Recall = fraction of frames
  with a score strictly above 0.5; Decay = mean of the first quarter-bin minus mean of the last one,
  with overlapping, inclusive bin edges ``round(linspace(1, N, 5) + 1e-10) - 1``.
* **Objects** of a sequence are ids ``1..max(first ground-truth frame)`` (255 = void is background).
  Every id in that range is evaluated, even one absent from the first frame. Scores are computed on
  frames ``1..T-2`` only (the first frame is given, the last is excluded as in the official code).
  A prediction with an id larger than the number of objects is an error; missing ids are empty masks.
* **Global numbers** average the per-object Mean/Recall/Decay over *all objects of all sequences*
  (not per sequence); ``J&F-Mean = (J-Mean + F-Mean) / 2``.

Arrays are ``(T, H, W)`` (frames, rows, columns); a single ``(H, W)`` frame is accepted by the
per-frame measures.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "GLOBAL_COLUMNS",
    "GLOBAL_KEYS",
    "PER_OBJECT_COLUMNS",
    "VOID_ID",
    "ObjectScores",
    "boundary_measure",
    "decay",
    "evaluate_sequence",
    "global_table",
    "mean",
    "recall",
    "region_similarity",
    "score_frame",
    "summarize",
]

VOID_ID = 255
"""Label value of void (ignored / unlabelled) pixels in DAVIS annotations."""

GLOBAL_KEYS: tuple[str, ...] = ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
"""Keys of the global dict returned by :func:`summarize`."""

GLOBAL_COLUMNS: tuple[str, ...] = (
    "J&F-Mean",
    "J-Mean",
    "J-Recall",
    "J-Decay",
    "F-Mean",
    "F-Recall",
    "F-Decay",
)
"""Column names of the official ``global_results-<split>.csv`` (same order as :data:`GLOBAL_KEYS`)."""

PER_OBJECT_COLUMNS: tuple[str, ...] = ("Sequence", "J-Mean", "F-Mean")
"""Column names of the official ``per-sequence_results-<split>.csv`` (one row per object)."""


# ----------------------------------------------------------------------------------------------------
# Per-frame measures
# ----------------------------------------------------------------------------------------------------


def _check_masks(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match ground-truth shape {gt.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"masks must be (H, W) or (T, H, W), got shape {pred.shape}")
    if void is not None and void.shape != gt.shape:
        raise ValueError(f"void shape {void.shape} does not match ground-truth shape {gt.shape}")


def region_similarity(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J (intersection over union) per frame.

    Args:
        pred: Predicted masks, ``(T, H, W)`` or ``(H, W)``; any dtype, non-zero means foreground.
        gt: Ground-truth masks, same shape as ``pred``.
        void: Optional mask of pixels to ignore, same shape as ``pred``.

    Returns:
        float64 array of shape ``pred.shape[:-2]`` (``(T,)``, or 0-d for a single frame). A frame whose
        union (outside void) is empty scores 1.0.
    """
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    void = None if void is None else np.asarray(void).astype(bool)
    _check_masks(pred, gt, void)
    valid = np.ones_like(gt) if void is None else ~void
    inter = np.count_nonzero(pred & gt & valid, axis=(-2, -1))
    union = np.count_nonzero((pred | gt) & valid, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.asarray(inter / union, dtype=np.float64)
    # Official convention: nothing to segment and nothing segmented is a perfect frame.
    return np.where(union == 0, 1.0, j)


def _boundary_map(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundary of a boolean ``(H, W)`` mask, offset half a pixel towards the origin.

    A pixel is on the boundary when its label differs from its right, bottom or bottom-right neighbour;
    only neighbours inside the image are compared, so the image border never creates a boundary.
    """
    b = np.zeros(mask.shape, dtype=bool)
    b[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    b[:-1, :] |= mask[:-1, :] != mask[1:, :]
    b[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return b


def _disk(radius: float) -> np.ndarray:
    """Boolean disk footprint: offsets ``arange(-radius, radius + 1)`` with ``dx**2 + dy**2 <= radius**2``.

    For an integer radius ``r`` this is the ``(2r+1, 2r+1)`` digital disk; a non-integer radius (only
    reachable with ``bound_th >= 1``) gives half-integer offsets and possibly an even-sized footprint.
    """
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def _dilate(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary dilation of ``(H, W)`` ``mask`` by ``footprint`` with the anchor at ``(kh // 2, kw // 2)``.

    ``out[y, x] = OR over footprint[i, j] of mask[y + i - ay, x + j - ax]``, pixels outside the image
    being background (the OpenCV ``dilate`` convention). Each footprint row is a set of horizontal runs,
    so the dilation is a union of vertically shifted horizontal window-ORs computed from running sums:
    O(H * W * kh) instead of O(H * W * kh * kw).
    """
    h, w = mask.shape
    kh, kw = footprint.shape
    ay, ax = kh // 2, kw // 2
    out = np.zeros((h, w), dtype=bool)
    if not mask.any():
        return out
    # Zero-pad by the widest horizontal reach so every window is a plain slice of the running sum.
    pad = max(ax, kw - 1 - ax)
    padded = np.zeros((h, w + 2 * pad), dtype=np.int32)
    padded[:, pad : pad + w] = mask
    csum = np.zeros((h, w + 2 * pad + 1), dtype=np.int32)
    np.cumsum(padded, axis=1, out=csum[:, 1:])
    windows: dict[tuple[int, int], np.ndarray] = {}
    for i in range(kh):
        dy = i - ay
        cols = np.flatnonzero(footprint[i])
        if cols.size == 0 or abs(dy) >= h:
            continue
        # Split the row into contiguous runs (a disk row is a single run).
        breaks = np.flatnonzero(np.diff(cols) > 1)
        starts = np.concatenate(([cols[0]], cols[breaks + 1]))
        ends = np.concatenate((cols[breaks], [cols[-1]]))
        for j0, j1 in zip(starts, ends, strict=True):
            lo, hi = int(j0) - ax, int(j1) - ax
            if (lo, hi) not in windows:
                # OR of mask[y, x + lo .. x + hi] == (window sum > 0).
                upper = csum[:, pad + hi + 1 : pad + hi + 1 + w]
                lower = csum[:, pad + lo : pad + lo + w]
                windows[(lo, hi)] = upper > lower
            row = windows[(lo, hi)]
            # out[y] |= row[y + dy] for rows where y + dy is inside the image.
            if dy >= 0:
                out[: h - dy] |= row[dy:]
            else:
                out[-dy:] |= row[: h + dy]
    return out


def _bound_pix(shape: tuple[int, int], bound_th: float) -> float:
    if bound_th >= 1:
        return float(bound_th)
    h, w = shape
    # Tolerance is a fraction of the image diagonal, rounded up to whole pixels.
    return float(np.ceil(bound_th * math.sqrt(h * h + w * w)))


def _f_measure_frame(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, footprint: np.ndarray) -> float:
    pred_b = _boundary_map(pred & valid)
    gt_b = _boundary_map(gt & valid)
    n_pred = int(np.count_nonzero(pred_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        # One side has no boundary: precision/recall are (1, 0) or (0, 1), hence F = 0.
        return 0.0
    # Matches only happen at boundary pixels, so both maps can be cropped to the bounding box of their
    # union: every source pixel that can reach a pixel of the box through the disk lies inside the box.
    rows = np.flatnonzero((pred_b | gt_b).any(axis=1))
    cols = np.flatnonzero((pred_b | gt_b).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    pred_b, gt_b = pred_b[box], gt_b[box]
    precision = np.count_nonzero(pred_b & _dilate(gt_b, footprint)) / n_pred
    rec = np.count_nonzero(gt_b & _dilate(pred_b, footprint)) / n_gt
    if precision + rec == 0:
        return 0.0
    return 2 * precision * rec / (precision + rec)


def boundary_measure(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> np.ndarray:
    """Boundary F-measure per frame.

    Args:
        pred: Predicted masks, ``(T, H, W)`` or ``(H, W)``; non-zero means foreground.
        gt: Ground-truth masks, same shape as ``pred``.
        void: Optional mask of pixels to ignore (removed from both masks before boundary extraction).
        bound_th: Matching tolerance; a fraction of the image diagonal when ``< 1``, else pixels.

    Returns:
        float64 array of shape ``pred.shape[:-2]`` (``(T,)``, or 0-d for a single frame).
    """
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    void = None if void is None else np.asarray(void).astype(bool)
    _check_masks(pred, gt, void)
    footprint = _disk(_bound_pix(gt.shape[-2:], bound_th))
    pred3 = pred.reshape(-1, *pred.shape[-2:])
    gt3 = gt.reshape(-1, *gt.shape[-2:])
    valid3 = np.ones_like(gt3) if void is None else ~void.reshape(gt3.shape)
    scores = [_f_measure_frame(p, g, v, footprint) for p, g, v in zip(pred3, gt3, valid3, strict=True)]
    return np.asarray(scores, dtype=np.float64).reshape(pred.shape[:-2])


def score_frame(
    pred: np.ndarray, gt: np.ndarray, n_objects: int, *, bound_th: float = 0.008
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..n_objects`` in one frame, as :func:`evaluate_sequence` computes them.

    For streaming evaluation (many predictions of one frame scored without holding whole videos):
    ``evaluate_sequence(gt, pred)[obj].J[t - 1] == score_frame(pred[t], gt[t], n)[0][obj - 1]``.

    Args:
        pred: ``(H, W)`` predicted id map.
        gt: ``(H, W)`` ground-truth id map (255 = void counts as background, as in the official code).
        n_objects: number of objects of the sequence (``max`` id of its first ground-truth frame).
        bound_th: boundary tolerance of F (see :func:`boundary_measure`).

    Returns:
        ``(J, F)``, two float64 arrays of shape ``(n_objects,)``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be (H, W) id maps of one shape, got {pred.shape} and {gt.shape}")
    footprint = _disk(_bound_pix(gt.shape, bound_th))
    valid = np.ones(gt.shape, dtype=bool)
    j = np.empty(n_objects)
    f = np.empty(n_objects)
    for i, obj in enumerate(range(1, n_objects + 1)):
        p, g = pred == obj, gt == obj
        j[i] = region_similarity(p, g)
        f[i] = _f_measure_frame(p, g, valid, footprint)
    return j, f


# ----------------------------------------------------------------------------------------------------
# Per-object statistics
# ----------------------------------------------------------------------------------------------------


def mean(values: np.ndarray) -> float:
    """Mean over frames ignoring NaNs (NaN when there is no finite value).

    Args:
        values: ``(N,)`` per-frame scores.
    """
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # empty / all-NaN -> NaN, silently
        return float(np.nanmean(values))


def recall(values: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of frames scoring strictly above ``threshold`` (NaN frames count as failures).

    Args:
        values: ``(N,)`` per-frame scores.
        threshold: Success threshold.
    """
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.mean(values > threshold))


def decay(values: np.ndarray, n_bins: int = 4) -> float:
    """Performance decay: mean of the first temporal bin minus mean of the last one.

    Bin edges are ``round(linspace(1, N, n_bins + 1) + 1e-10) - 1`` and bin ``i`` spans
    ``values[e[i] : e[i + 1] + 1]`` (edges inclusive, so neighbouring bins share a frame). As in the
    official code the edges are stored as uint8, i.e. they wrap modulo 256; this only matters for
    sequences with more than 256 evaluated frames (none in DAVIS).

    Args:
        values: ``(N,)`` per-frame scores.
        n_bins: Number of temporal bins.

    Returns:
        The decay (NaN if a bin has no finite value).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    edges = np.round(np.linspace(1, n, n_bins + 1) + 1e-10) - 1  # +1e-10: .5 always rounds up
    edges = edges.astype(np.int64) % 256  # reproduce the official uint8 cast
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[n_bins - 1] : edges[n_bins] + 1]
    return mean(first) - mean(last)


@dataclass(frozen=True)
class ObjectScores:
    """Scores of one object of one sequence.

    Attributes:
        J: ``(N,)`` per-frame region similarity over the evaluated frames (``N = T - 2``).
        F: ``(N,)`` per-frame boundary measure over the same frames.
        J_mean, J_recall, J_decay: Statistics of ``J`` (:func:`mean`, :func:`recall`, :func:`decay`).
        F_mean, F_recall, F_decay: Statistics of ``F``.
    """

    J: np.ndarray
    F: np.ndarray
    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float

    @classmethod
    def from_frames(cls, j: np.ndarray, f: np.ndarray) -> ObjectScores:
        """Build the statistics from per-frame ``(N,)`` J and F arrays."""
        j, f = np.asarray(j, dtype=np.float64), np.asarray(f, dtype=np.float64)
        return cls(j, f, mean(j), recall(j), decay(j), mean(f), recall(f), decay(f))

    def to_dict(self) -> dict[str, float | np.ndarray]:
        """Plain dict with the official names: ``J``, ``F``, ``J-Mean``, ``J-Recall``, ..., ``F-Decay``."""
        return {
            "J": self.J,
            "F": self.F,
            "J-Mean": self.J_mean,
            "J-Recall": self.J_recall,
            "J-Decay": self.J_decay,
            "F-Mean": self.F_mean,
            "F-Recall": self.F_recall,
            "F-Decay": self.F_decay,
        }


SequenceScores = dict[int, ObjectScores]
"""Per-object scores of one sequence, keyed by object id (1..n_objects, ascending)."""


def evaluate_sequence(
    gt: np.ndarray, pred: np.ndarray, *, void: np.ndarray | None = None, bound_th: float = 0.008
) -> SequenceScores:
    """Evaluate one sequence like the official semi-supervised evaluator.

    Objects are ids ``1..max(gt[0])`` (void 255 counted as background); each is scored on frames
    ``1..T-2``, the first (given) and last frames being excluded. Prediction ids absent from ``pred``
    are empty masks; ``pred[0]`` and ``pred[-1]`` are ignored.

    Args:
        gt: ``(T, H, W)`` integer ground-truth id map for all frames; 255 marks void pixels, which are
            treated as background (the official semi-supervised evaluation does not use void masks).
        pred: ``(T, H, W)`` integer predicted id map, same shape as ``gt``.
        void: Optional ``(T, H, W)`` boolean mask of pixels to ignore in J and F (the official
            semi-supervised evaluation passes none; leave ``None`` for official numbers).
        bound_th: Boundary tolerance of F (see :func:`boundary_measure`).

    Returns:
        ``{object_id: ObjectScores}`` in ascending id order; empty when the first frame has no object.

    Raises:
        ValueError: On shape mismatch, fewer than 3 frames, or a predicted id larger than the number of
            objects (the official evaluator refuses such results).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim != 3:
        raise ValueError(f"ground truth must be (T, H, W), got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match ground-truth shape {gt.shape}")
    if void is not None and np.shape(void) != gt.shape:
        raise ValueError(f"void shape {np.shape(void)} does not match ground-truth shape {gt.shape}")
    if gt.shape[0] < 3:
        raise ValueError(f"need at least 3 frames (first and last are not evaluated), got {gt.shape[0]}")

    first = gt[0]
    n_objects = int(np.max(np.where(first == VOID_ID, 0, first)))
    gt_mid = gt[1:-1]
    pred_mid = pred[1:-1]
    # The official reader counts predicted objects as the largest id over the evaluated frames only.
    max_pred = int(np.max(pred_mid)) if pred_mid.size else 0
    if max_pred > n_objects:
        raise ValueError(
            f"prediction contains object id {max_pred} but the first ground-truth frame has only "
            f"{n_objects} object(s)"
        )
    void_mid = None if void is None else np.asarray(void, dtype=bool)[1:-1]

    scores: SequenceScores = {}
    for obj in range(1, n_objects + 1):
        g = gt_mid == obj  # void (255) never equals an object id, so it is background here
        p = pred_mid == obj
        j = region_similarity(p, g, void_mid)
        f = boundary_measure(p, g, void_mid, bound_th=bound_th)
        scores[obj] = ObjectScores.from_frames(j, f)
    return scores


# ----------------------------------------------------------------------------------------------------
# Dataset-level summary
# ----------------------------------------------------------------------------------------------------


def summarize(
    per_sequence: Mapping[str, Mapping[int, ObjectScores]],
) -> tuple[dict[str, float], pd.DataFrame]:
    """Aggregate per-object scores into the official global numbers and per-object table.

    Args:
        per_sequence: ``{sequence_name: {object_id: ObjectScores}}``; order is kept in the table.

    Returns:
        ``(global_dict, per_object_df)``: ``global_dict`` has keys :data:`GLOBAL_KEYS` with values as
        fractions (not percentages), each the plain mean over all objects of all sequences, and
        ``JF_mean = (J_mean + F_mean) / 2``. ``per_object_df`` has columns :data:`PER_OBJECT_COLUMNS`,
        one row per object named ``<sequence>_<object_id>``.

    Raises:
        ValueError: If there is no object at all.
    """
    names: list[str] = []
    objects: list[ObjectScores] = []
    for seq, per_object in per_sequence.items():
        for obj_id, scores in per_object.items():
            names.append(f"{seq}_{obj_id}")
            objects.append(scores)
    if not objects:
        raise ValueError("no objects to summarize")

    def avg(attr: str) -> float:
        return float(np.mean([getattr(o, attr) for o in objects]))

    j_mean, f_mean = avg("J_mean"), avg("F_mean")
    global_dict = {
        "JF_mean": (j_mean + f_mean) / 2.0,
        "J_mean": j_mean,
        "J_recall": avg("J_recall"),
        "J_decay": avg("J_decay"),
        "F_mean": f_mean,
        "F_recall": avg("F_recall"),
        "F_decay": avg("F_decay"),
    }
    table = pd.DataFrame(
        {
            "Sequence": names,
            "J-Mean": [o.J_mean for o in objects],
            "F-Mean": [o.F_mean for o in objects],
        },
        columns=list(PER_OBJECT_COLUMNS),
    )
    return global_dict, table


def global_table(global_dict: Mapping[str, float]) -> pd.DataFrame:
    """One-row table with the official global columns (``J&F-Mean``, ``J-Mean``, ..., ``F-Decay``).

    Args:
        global_dict: The dict returned by :func:`summarize` (keys :data:`GLOBAL_KEYS`).
    """
    row = [[float(global_dict[k]) for k in GLOBAL_KEYS]]
    return pd.DataFrame(row, columns=list(GLOBAL_COLUMNS))
