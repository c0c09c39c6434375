"""PCK on JHMDB, numerically equal to the official CRW ``eval_pck.py`` (arrays in, numbers out).

The official scoring of one video, step by step (each step is a function here):

1. :func:`visibility`: a predicted joint is *visible* unless its predicted x is negative (``-1`` from an
   empty channel, or any x < 0); a negative predicted y is visible. GT visibility is never used: a
   GT joint outside the image is scored normally.
2. :func:`scale_predictions`: grid coordinates back to pixels of the original frame, in float32,
   ``x = float32(float32(x_f / (W'/stride)) * W)`` (``W'/stride = 40`` for the official 320 px input).
3. :func:`normalisers`: per frame, ``0.6 x`` the diagonal of the bounding box of the *visible* joints'
   GT positions, the box starting at ``min = 1e6`` and ``max = -1`` (so a person entirely left of
   x = -1 keeps ``max x = -1``, as the official loop does).
4. :func:`normalised_distances`: ``||pred - gt||_2 / box`` for every visible joint of frames
   ``k >= 1`` (frame 0, the given one, is never scored); the norm is ``sqrt(dx*dx + dy*dy)``, bit-equal
   to the official ``np.linalg.norm`` of a 2-vector.
5. :func:`pck`: distances of all videos are pooled per joint in list order (long videos weigh more);
   ``PCK_j(t) = 100 * #(d <= t) / #d`` (inclusive) and the reported number is the mean of the
   per-joint PCKs.

Where the official script fails, this module returns numbers and says so: a joint never scored in
the whole list (the official ``ZeroDivisionError``) gets NaN and the mean is taken over the scored
joints (:attr:`PckResult.unscored_joints` names them); a zero box with an exact prediction (the
official ``0/0 = nan`` entry, counted but never correct) is stored as ``+inf``, which counts the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BOX_FACTOR",
    "THRESHOLDS",
    "PckResult",
    "metric_name",
    "normalised_distances",
    "normalisers",
    "pck",
    "scale_predictions",
    "scored_counts",
    "video_distances",
    "visibility",
]

#: PCK thresholds of the official script (fractions of the normaliser).
THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
#: The normaliser is this factor times the diagonal of the GT joints' bounding box.
BOX_FACTOR = 0.6
#: Official prediction grid per axis (``feat_res = 40``: a 320 px input at stride 8).
OFFICIAL_GRID = 40.0


def metric_name(threshold: float) -> str:
    """``PCK_0.1`` for 0.1 (the name used in metrics files and tables)."""
    return f"PCK_{threshold:g}"


def _check_pred(pred: np.ndarray, what: str) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim != 3 or pred.shape[0] != 2:
        raise ValueError(f"expected {what} of shape (2, joints, T) ([x; y]), found shape {pred.shape}")
    return pred


def visibility(pred_feat: np.ndarray) -> np.ndarray:
    """Official ``jnt_visible``: 0 where the predicted x is negative, else 1.

    Args:
        pred_feat: (2, J, T) predictions ``[x; y]`` (grid or pixels: only the sign of x matters).

    Returns:
        (J, T) float64 of 1.0 / 0.0.
    """
    pred = _check_pred(pred_feat, "predictions")
    return np.where(pred[0] < 0, 0.0, 1.0)


def scale_predictions(
    pred_feat: np.ndarray,
    image_hw: tuple[int, int],
    grid_wh: tuple[float, float] = (OFFICIAL_GRID, OFFICIAL_GRID),
) -> np.ndarray:
    """Predictions on the grid -> pixels of the original frame, in float32 as the official script.

    ``x = float32(float32(x_f / grid_w) * W)``, ``y = float32(float32(y_f / grid_h) * H)``; the official
    script hard-codes ``grid_w = grid_h = 40`` (``feat_res``). The general divisor is the input size
    over the stride, ``(W' / stride, H' / stride)`` (not the rounded-up grid size), which undoes
    :func:`~sfc.evaluation.jhmdb.labels.feature_coords` exactly.

    Args:
        pred_feat: (2, J, T) ``[x_f; y_f]`` grid coordinates (float32 as in a ``.dat``).
        image_hw: (H, W) of the original frames (of ``00001.png``).
        grid_wh: ``(W' / stride, H' / stride)``; (40.0, 40.0) for the official 320 px input.

    Returns:
        (2, J, T) float32 ``[x; y]`` 0-based pixels (negative x stay negative).
    """
    pred = np.array(_check_pred(pred_feat, "predictions"), dtype=np.float32)
    height, width = (int(v) for v in image_hw)
    grid_w, grid_h = (np.float32(v) for v in grid_wh)
    pred[0] = (pred[0] / grid_w) * np.float32(width)
    pred[1] = (pred[1] / grid_h) * np.float32(height)
    return pred


def normalisers(gt0: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Official per-frame normaliser: ``0.6 x`` the diagonal of the visible joints' GT box.

    The box is accumulated as the official loop does, from ``minx = miny = 1e6`` and
    ``maxx = maxy = -1`` over the joints visible in that frame; a frame without visible joints gets
    the (unused) value of those start values.

    Args:
        gt0: (2, J, T) float64 ground truth ``[x; y]``, **0-based** pixels (``pos_img - 1``).
        visible: (J, T) 1.0 / 0.0 from :func:`visibility`.

    Returns:
        (T,) float64.
    """
    gt = _check_pred(gt0, "ground truth").astype(np.float64, copy=False)
    vis = np.asarray(visible).astype(bool)
    if vis.shape != gt.shape[1:]:
        raise ValueError(f"expected visibility of shape {gt.shape[1:]}, found {vis.shape}")
    minx = np.minimum(1e6, np.where(vis, gt[0], np.inf).min(axis=0))
    miny = np.minimum(1e6, np.where(vis, gt[1], np.inf).min(axis=0))
    maxx = np.maximum(-1.0, np.where(vis, gt[0], -np.inf).max(axis=0))
    maxy = np.maximum(-1.0, np.where(vis, gt[1], -np.inf).max(axis=0))
    dx, dy = maxx - minx, maxy - miny
    return BOX_FACTOR * np.sqrt(dx * dx + dy * dy)


def normalised_distances(
    pred_img: np.ndarray, gt0: np.ndarray, visible: np.ndarray, box: np.ndarray
) -> np.ndarray:
    """Official ``dNorm`` of every scored entry; NaN where an entry is not scored.

    An entry ``(j, k)`` is scored when ``visible[j, k]`` and ``k >= 1``. Its distance is
    ``sqrt(dx*dx + dy*dy) / box[k]`` in float64 with ``dx = float64(pred_x) - gt_x``. A zero box
    gives ``+inf`` (the official ``d / 0``; for ``d = 0`` the official ``nan`` is stored as ``+inf``
    here so that NaN keeps meaning "not scored": both count as an entry that is never correct).

    Args:
        pred_img: (2, J, T) float32 predictions in pixels (:func:`scale_predictions`).
        gt0: (2, J, T) float64 0-based ground truth.
        visible: (J, T) from :func:`visibility`.
        box: (T,) from :func:`normalisers`.

    Returns:
        (J, T) float64.
    """
    pred = _check_pred(pred_img, "predictions")
    gt = _check_pred(gt0, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"expected predictions of the ground truth's shape {gt.shape}, found {pred.shape}")
    vis = np.asarray(visible).astype(bool)
    dx = pred[0].astype(np.float64) - gt[0]
    dy = pred[1].astype(np.float64) - gt[1]
    dist = np.sqrt(dx * dx + dy * dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        dnorm = dist / np.asarray(box, dtype=np.float64)[None, :]
    dnorm[np.isnan(dnorm)] = np.inf  # 0 / 0: counted, never correct
    scored = vis.copy()
    scored[:, 0] = False
    dnorm[~scored] = np.nan
    return dnorm


def video_distances(
    pred_feat: np.ndarray,
    pos_img: np.ndarray,
    image_hw: tuple[int, int],
    grid_wh: tuple[float, float] = (OFFICIAL_GRID, OFFICIAL_GRID),
) -> np.ndarray:
    """The whole official scoring of one video up to its distances.

    Args:
        pred_feat: (2, J, T') grid predictions (the ``.dat`` content); as in the official loops,
            frames beyond the ground truth's T are ignored.
        pos_img: (2, J, T) JHMDB ground truth, 1-based.
        image_hw: (H, W) of the frames.
        grid_wh: see :func:`scale_predictions`.

    Returns:
        (J, T) float64 distances, NaN where not scored (:func:`normalised_distances`).

    Raises:
        ValueError: fewer predicted frames than annotated ones (the official IndexError), or joint
            counts that differ.
    """
    pred = _check_pred(pred_feat, "predictions")
    gt0 = _check_pred(pos_img, "ground truth").astype(np.float64) - 1
    if pred.shape[1] != gt0.shape[1] or pred.shape[2] < gt0.shape[2]:
        raise ValueError(
            f"expected predictions of shape (2, {gt0.shape[1]}, >= {gt0.shape[2]}) for ground truth of shape "
            f"{gt0.shape}, found {pred.shape}"
        )
    pred = pred[:, :, : gt0.shape[2]]
    visible = visibility(pred)
    pred_img = scale_predictions(pred, image_hw, grid_wh)
    box = normalisers(gt0, visible)
    return normalised_distances(pred_img, gt0, visible, box)


def _pooled(distances: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per joint, the scored entries of every video concatenated in list order."""
    if not distances:
        raise ValueError("expected the distances of at least one video, found none")
    arrays = [np.asarray(d, dtype=np.float64) for d in distances]
    joints = arrays[0].shape[0]
    for i, d in enumerate(arrays):
        if d.ndim != 2 or d.shape[0] != joints:
            raise ValueError(f"expected (joints={joints}, T) distances, found shape {d.shape} for video {i}")
    return [np.concatenate([d[j][~np.isnan(d[j])] for d in arrays]) for j in range(joints)]


def scored_counts(distances: Sequence[np.ndarray]) -> np.ndarray:
    """Number of scored entries per joint over all videos: (J,) int64 (0 = never scored)."""
    return np.array([len(v) for v in _pooled(distances)], dtype=np.int64)


def pck(distances: Sequence[np.ndarray], thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """Per-joint PCK and their mean, pooled over videos as the official ``computePCK``.

    ``PCK_j(t) = 100.0 * #(d <= t) / #d`` over joint ``j``'s scored entries of all videos; the last
    column is ``np.mean`` of the per-joint values (not the fraction of all correct entries).
    A joint never scored in the whole list, where the official script raises ``ZeroDivisionError``,
    gets NaN, and the mean is taken over the scored joints only (all NaN when none is scored);
    :func:`scored_counts` / :class:`PckResult` say which joints that was.

    Args:
        distances: per video, (J, T) distances from :func:`normalised_distances` (NaN = not scored),
            in list order.
        thresholds: PCK thresholds.

    Returns:
        (len(thresholds), J + 1) float64 percentages: joints 0..J-1, then their mean.
    """
    pooled = _pooled(distances)
    table = np.full((len(thresholds), len(pooled) + 1), np.nan)
    for i, t in enumerate(thresholds):
        for j, values in enumerate(pooled):
            if len(values):
                table[i, j] = 100.0 * int(np.count_nonzero(values <= t)) / len(values)
        per_joint = table[i, :-1]
        scored = ~np.isnan(per_joint)
        if scored.all():
            table[i, -1] = np.mean(per_joint)
        elif scored.any():
            table[i, -1] = np.mean(per_joint[scored])
    return table


@dataclass(frozen=True)
class PckResult:
    """PCK of a list of videos: the per-joint table, its means, and which joints were scored.

    Attributes:
        thresholds: the PCK thresholds (rows of ``table``).
        table: (len(thresholds), J + 1) percentages, joints then their mean (:func:`pck`).
        scored: (J,) number of scored entries per joint (0 = never scored: NaN in ``table``).
    """

    thresholds: tuple[float, ...]
    table: np.ndarray
    scored: np.ndarray

    @classmethod
    def from_distances(
        cls, distances: Sequence[np.ndarray], thresholds: Sequence[float] = THRESHOLDS
    ) -> PckResult:
        """Score per-video (J, T) distances pooled in list order (see :func:`pck`)."""
        return cls(tuple(float(t) for t in thresholds), pck(distances, thresholds), scored_counts(distances))

    @property
    def mean(self) -> dict[float, float]:
        """Threshold -> mean of the per-joint PCKs (percent)."""
        return {t: float(self.table[i, -1]) for i, t in enumerate(self.thresholds)}

    @property
    def unscored_joints(self) -> list[int]:
        """Joints (0-based) with no scored entry: the official script's ``ZeroDivisionError``."""
        return [int(j) for j in np.flatnonzero(self.scored == 0)]

    def metrics(self) -> dict[str, float]:
        """``{"PCK_0.1": mean percent, ...}``."""
        return {metric_name(t): value for t, value in self.mean.items()}
