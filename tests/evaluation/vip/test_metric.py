"""Tests of the VIP metric (:mod:`sfc.evaluation.vip.metric`): hand-computed cases and the official formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfc.evaluation.vip.metric import ConfusionMatrix, fast_hist, scores

GT = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)


def test_hand_computed_hist_and_scores() -> None:
    hist = fast_hist(GT, PRED)
    assert hist.shape == (20, 20) and hist.dtype == np.int64 and hist.sum() == 5  # the 255 pixel is ignored
    assert (hist[0, 0], hist[0, 1], hist[1, 1], hist[2, 2]) == (1, 1, 2, 1)
    s = scores(hist)
    iou = s["per_class_IoU"]
    assert iou[0] == 1 / (2 + 1 - 1) and iou[1] == 2 / (2 + 3 - 2) and iou[2] == 1.0
    assert np.isnan(iou[3:]).all()  # 0/0: absent from GT and prediction, excluded from the mean
    assert s["mIoU"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3, abs=1e-15)
    assert s["overall_accuracy"] == 4 / 5
    np.testing.assert_allclose(s["per_class_accuracy"][:3], [0.5, 1.0, 1.0])
    assert np.isnan(s["per_class_accuracy"][3:]).all()
    assert s["mean_accuracy"] == pytest.approx(2.5 / 3, abs=1e-15)
    assert s["fwavacc"] == pytest.approx(0.4 * 0.5 + 0.4 * 2 / 3 + 0.2 * 1.0, abs=1e-15)


def test_background_counts_and_a_class_only_predicted_has_iou_zero() -> None:
    gt = np.array([[0, 0], [5, 5]], np.uint8)
    pred = np.array([[0, 3], [5, 5]], np.uint8)  # class 3 only predicted
    s = scores(fast_hist(gt, pred))
    iou = s["per_class_IoU"]
    assert iou[0] == 0.5 and iou[5] == 1.0 and iou[3] == 0.0
    assert s["mIoU"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)  # background included, class 3 counted
    assert np.isnan(s["per_class_accuracy"][3])  # no GT pixel of class 3
    assert s["mean_accuracy"] == pytest.approx((0.5 + 1.0) / 2)


def test_ground_truth_outside_classes_is_ignored() -> None:
    gt = np.array([[20, 255, 100, 1]], np.uint8)
    pred = np.array([[1, 2, 3, 1]], np.uint8)
    hist = fast_hist(gt, pred)
    assert hist.sum() == 1 and hist[1, 1] == 1
    neg = fast_hist(np.array([[-1, 4]], np.int32), np.array([[7, 4]], np.int32))
    assert neg.sum() == 1 and neg[4, 4] == 1


@pytest.mark.parametrize("bad", [20, 21, 255])
def test_prediction_outside_classes_is_refused_naming_the_value(bad: int) -> None:
    pred = PRED.copy()
    pred[0, 0] = bad
    with pytest.raises(ValueError, match=rf"expected predicted class ids 0..19, found \[{bad}\]"):
        fast_hist(GT, pred)


def test_prediction_out_of_range_under_void_gt_is_not_counted_by_fast_hist() -> None:
    # fast_hist only looks at counted pixels (like the official); the folder scorer refuses any value >= 20.
    hist = fast_hist(np.array([[255, 1]], np.uint8), np.array([[20, 1]], np.uint8))
    assert hist.sum() == 1


def test_negative_prediction_refused_and_shapes_checked() -> None:
    with pytest.raises(ValueError, match=r"found \[-1\]"):
        fast_hist(np.array([[0, 1]], np.int32), np.array([[-1, 1]], np.int32))
    with pytest.raises(ValueError, match="ground truth's shape"):
        fast_hist(GT, PRED[:, :2])
    with pytest.raises(ValueError, match="integer ids"):
        fast_hist(GT, PRED.astype(np.float32))


def test_confusion_matrix_accumulates_one_matrix() -> None:
    cm = ConfusionMatrix()
    cm.update(GT, PRED)
    cm.update(GT[:, ::-1], PRED[:, ::-1])
    assert cm.frames == 2
    np.testing.assert_array_equal(cm.hist, 2 * fast_hist(GT, PRED))
    assert cm.scores()["mIoU"] == scores(fast_hist(GT, PRED))["mIoU"]  # same proportions


def test_empty_matrix_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="empty"):
        scores(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="square"):
        scores(np.zeros((20, 3)))
    with pytest.raises(ValueError, match="empty"):
        ConfusionMatrix().scores()


def _official_show_result(hist: np.ndarray) -> dict[str, float]:
    """The arithmetic of the official ``show_result`` (eval_vip.py), verbatim."""
    num_cor_pix = np.diag(hist)
    num_gt_pix = hist.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = num_cor_pix.sum() / hist.sum()
        per_acc = num_cor_pix / num_gt_pix
        iu = num_cor_pix / (num_gt_pix + hist.sum(0) - num_cor_pix)
        freq = num_gt_pix / hist.sum()
    return {"overall_accuracy": acc, "mean_accuracy": np.nanmean(per_acc), "mIoU": np.nanmean(iu),
            "fwavacc": (freq[freq > 0] * iu[freq > 0]).sum()}


def test_scores_bit_identical_to_the_official_arithmetic() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        official_hist = np.zeros((20, 20))  # the official float64 accumulator
        cm = ConfusionMatrix()
        classes = rng.choice(20, size=int(rng.integers(2, 20)), replace=False)
        for _ in range(3):
            gt = rng.choice(np.append(classes, 255), size=(13, 17)).astype(np.uint8)
            pred = rng.choice(classes, size=(13, 17)).astype(np.uint8)
            k = (gt >= 0) & (gt < 20)
            official_hist += np.bincount(20 * gt[k].astype(int) + pred[k], minlength=400).reshape(20, 20)
            cm.update(gt, pred)
        np.testing.assert_array_equal(cm.hist, official_hist)
        ours, official = cm.scores(), _official_show_result(official_hist)
        for key, value in official.items():
            assert ours[key] == value or (math.isnan(ours[key]) and math.isnan(value)), key
