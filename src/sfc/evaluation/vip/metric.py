"""The VIP part-segmentation metric: one confusion matrix, mIoU over 20 classes (official ``eval_vip.py``).

Semantics (CRW ``eval/eval_vip.py``, checked against its goldens):

* :func:`fast_hist`: ground-truth ids outside 0..19 (255 void, 20..254) are ignored;
  ``hist[gt, pred] += 1`` for the other pixels (row = GT class, column = predicted class).
* One matrix is summed over every scored frame of every video: no per-frame or per-video averaging.
* :func:`scores`: ``IoU_c = hist[c, c] / (rowsum_c + colsum_c - hist[c, c])``; a class absent from
  both ground truth and predictions is 0/0 = NaN and left out of the mean; a class only predicted or
  only in the ground truth has IoU 0 and counts. mIoU = nanmean over the 20 classes, background
  included. Also overall accuracy (trace / sum), per-class accuracy (diag / rowsum, NaN without GT
  pixels), mean accuracy (nanmean) and frequency-weighted IoU. All fractions in 0..1, computed with
  the official operations in the official order, so the numbers are bit-identical.

One deliberate difference: the official ``fast_hist`` does not check predictions. A predicted 20
silently lands in ``hist[gt + 1, 0]`` (and with ``gt = 19`` the reshape fails); values above 20 stop
the official script in ``pdb``. Here any predicted value outside 0..19 is a ``ValueError`` naming it.
Arrays in, numbers out: no file I/O here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sfc.evaluation.vip.reader import N_CLASSES

__all__ = ["ConfusionMatrix", "fast_hist", "scores"]


def fast_hist(gt: np.ndarray, pred: np.ndarray, n: int = N_CLASSES) -> np.ndarray:
    """Confusion counts of one frame.

    Args:
        gt: (H, W) integer ground-truth ids; values outside ``0..n-1`` are ignored.
        pred: (H, W) integer predicted ids, all in ``0..n-1``.
        n: number of classes.

    Returns:
        (n, n) int64 counts, row = ground-truth class, column = predicted class.

    Raises:
        ValueError: shapes differ, non-integer arrays, or a predicted value outside ``0..n-1``
            (where the official code miscounts or stops).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"fast_hist: expected a prediction of the ground truth's shape {gt.shape}, found {pred.shape}")
    for what, arr in (("ground truth", gt), ("prediction", pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"fast_hist: expected integer ids in the {what}, found dtype {arr.dtype}")
    keep = (gt >= 0) & (gt < n)
    p = pred[keep].astype(np.int64)
    if p.size and (int(p.min()) < 0 or int(p.max()) >= n):
        values = np.unique(p[(p < 0) | (p >= n)]).tolist()
        raise ValueError(
            f"fast_hist: expected predicted class ids 0..{n - 1}, found {values} (the official eval_vip.py "
            f"miscounts 20 as hist[gt + 1, 0] and stops on larger values)"
        )
    return np.bincount(n * gt[keep].astype(np.int64) + p, minlength=n * n).reshape(n, n)


def scores(hist: np.ndarray) -> dict[str, Any]:
    """The official VIP scores of a confusion matrix.

    Args:
        hist: (n, n) counts, row = ground truth, column = prediction.

    Returns:
        ``mIoU`` (float), ``per_class_IoU`` ((n,) float64, NaN where 0/0), ``overall_accuracy``,
        ``per_class_accuracy`` ((n,), NaN without GT pixels), ``mean_accuracy``, ``fwavacc``; all
        fractions in 0..1.

    Raises:
        ValueError: not a square matrix, or no counted pixel at all.
    """
    hist = np.asarray(hist, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"scores: expected a square (n, n) confusion matrix, found shape {hist.shape}")
    if hist.sum() <= 0:
        raise ValueError("scores: the confusion matrix is empty (no ground-truth pixel with a class id was scored)")
    num_cor_pix = np.diag(hist)
    num_gt_pix = hist.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        overall = num_cor_pix.sum() / hist.sum()
        acc = num_cor_pix / num_gt_pix
        iu = num_cor_pix / (num_gt_pix + hist.sum(0) - num_cor_pix)
        freq = num_gt_pix / hist.sum()
    return {
        "mIoU": float(np.nanmean(iu)),
        "per_class_IoU": iu,
        "overall_accuracy": float(overall),
        "per_class_accuracy": acc,
        "mean_accuracy": float(np.nanmean(acc)),  # there is at least one GT class: hist.sum() > 0
        "fwavacc": float((freq[freq > 0] * iu[freq > 0]).sum()),
    }


class ConfusionMatrix:
    """Accumulates :func:`fast_hist` over frames (one matrix for a whole benchmark run).

    Attributes:
        n: number of classes.
        hist: (n, n) int64 running counts.
        frames: number of frames added.
    """

    def __init__(self, n: int = N_CLASSES) -> None:
        self.n = n
        self.hist = np.zeros((n, n), dtype=np.int64)
        self.frames = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame (see :func:`fast_hist` for the checks)."""
        self.hist += fast_hist(gt, pred, self.n)
        self.frames += 1

    def scores(self) -> dict[str, Any]:
        """:func:`scores` of the counts so far."""
        return scores(self.hist)
