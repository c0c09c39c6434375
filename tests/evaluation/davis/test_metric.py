"""Tests of :mod:`sfc.evaluation.davis.metric` (DAVIS-2017 J&F, semi-supervised).

Hand-computable cases, a brute-force boundary-F reference, and reference numbers produced by the
official ``davis2017-evaluation`` code (commit ac7c43f, run in a scratch environment with OpenCV and
scikit-image) on the deterministic inputs built by :func:`_reference_frames` and
:func:`_reference_sequence` below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sfc.evaluation.davis.metric import (
    GLOBAL_COLUMNS,
    GLOBAL_KEYS,
    PER_OBJECT_COLUMNS,
    ObjectScores,
    boundary_measure,
    decay,
    evaluate_sequence,
    global_table,
    mean,
    recall,
    region_similarity,
    summarize,
)

SIZES = [(8, 8), (17, 23), (40, 31), (64, 96)]


# ----------------------------------------------------------------------------------------- helpers


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _pattern(h: int, w: int, t: int, mod: int) -> np.ndarray:
    """Deterministic salt noise (no RNG, so the input is identical on every numpy version)."""
    yy, xx = np.mgrid[:h, :w]
    return (yy * 31 + xx * 17 + t * 7) % mod == 0


def _brute_boundary(mask: np.ndarray) -> set[tuple[int, int]]:
    """Boundary pixels by definition: differs from the in-image right, bottom or bottom-right pixel."""
    h, w = mask.shape
    out = set()
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                yy, xx = y + dy, x + dx
                if yy < h and xx < w and mask[y, x] != mask[yy, xx]:
                    out.add((y, x))
    return out


def _brute_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    """F-measure by exhaustive search: a boundary pixel matches if the other boundary is within ``radius``."""
    bp, bg = _brute_boundary(pred), _brute_boundary(gt)
    if not bp and not bg:
        return 1.0
    if not bp or not bg:
        return 0.0

    def matched(src: set, dst: set) -> int:
        return sum(any((y - v) ** 2 + (x - u) ** 2 <= radius**2 for v, u in dst) for y, x in src)

    precision = matched(bp, bg) / len(bp)
    rec = matched(bg, bp) / len(bg)
    return 0.0 if precision + rec == 0 else 2 * precision * rec / (precision + rec)


def _reference_frames() -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) frame pairs whose J/F were computed with the official code (see REF_FRAMES_*)."""
    pairs = []
    for h, w in [(30, 40), (61, 47), (120, 160), (480, 854)]:
        gt = _ellipse(h, w, 0.45 * h, 0.5 * w, 0.3 * h, 0.25 * w)
        pred = _ellipse(h, w, 0.5 * h, 0.45 * w, 0.28 * h, 0.3 * w) ^ _pattern(h, w, 0, 29)
        pairs.append((pred, gt))
    return pairs


def _reference_sequence() -> tuple[np.ndarray, np.ndarray]:
    """A (T=9, 72, 100) sequence with ids {1, 3} in frame 0, void pixels, and drifting predictions."""
    t_len, h, w = 9, 72, 100
    gt = np.zeros((t_len, h, w), np.uint8)
    pred = np.zeros((t_len, h, w), np.uint8)
    for t in range(t_len):
        gt[t][_ellipse(h, w, 20 + t, 25 + 2 * t, 12, 15)] = 1
        gt[t][_ellipse(h, w, 50, 70 - t, 10 + t, 14)] = 3
        if t >= 5:
            gt[t][_ellipse(h, w, 60, 20, 6, 8)] = 2  # id 2 only appears late
        gt[t][35:37, :] = 255  # void band: background for the semi-supervised metrics
        pred[t][_ellipse(h, w, 21 + 1.5 * t, 26 + 2 * t, 11, 16 + 0.5 * t)] = 1
        pred[t][_ellipse(h, w, 52, 69 - 1.3 * t, 9 + t, 15) ^ _pattern(h, w, t, 13)] = 3
    return gt, pred


# Official davis2017-evaluation output on _reference_frames(): db_eval_iou(gt, pred), f_measure(pred, gt).
REF_FRAMES_J = [0.6303191489361702, 0.6418242491657397, 0.6396949096335599, 0.6402550656282]
REF_FRAMES_F = [0.40026751379368003, 0.25910154141426256, 0.1441794892053647, 0.09352517985611511]

# Official output (DAVIS.get_all_masks + Results.read_masks object split, then
# DAVISEvaluation._evaluate_semisupervised and utils.db_statistics) on _reference_sequence():
# per object (J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay).
REF_SEQUENCE = {
    1: (
        0.6107397197853438,
        0.8571428571428571,
        0.21390746692912677,
        0.34512468465952245,
        0.0,
        0.09877996665087058,
    ),
    2: (0.5714285714285714, 0.5714285714285714, 1.0, 0.5714285714285714, 0.5714285714285714, 1.0),
    3: (0.41255342879647106, 0.0, -0.059974083218376106, 0.09829684911509688, 0.0, -0.019684883202624487),
}


# ------------------------------------------------------------------------------------------------ J


@pytest.mark.parametrize("size", SIZES)
def test_region_similarity_perfect_disjoint_empty(size: tuple[int, int]) -> None:
    h, w = size
    a = np.zeros((h, w), bool)
    a[: h // 2, : w // 2] = True
    b = np.zeros((h, w), bool)
    b[h // 2 :, w // 2 :] = True
    empty = np.zeros((h, w), bool)
    assert float(region_similarity(a, a)) == 1.0
    assert float(region_similarity(a, b)) == 0.0
    # Official convention: empty union -> 1.
    assert float(region_similarity(empty, empty)) == 1.0
    assert float(region_similarity(a, empty)) == 0.0


@pytest.mark.parametrize("size", SIZES)
def test_region_similarity_partial_overlap(size: tuple[int, int]) -> None:
    h, w = size
    gt = np.zeros((h, w), bool)
    gt[:2, :4] = True  # 8 pixels
    pred = np.zeros((h, w), bool)
    pred[:2, 2:6] = True  # 8 pixels, 4 shared
    assert float(region_similarity(pred, gt)) == pytest.approx(4 / 12)
    # Void pixels leave both the intersection and the union.
    void = np.zeros((h, w), bool)
    void[0, :] = True
    assert float(region_similarity(pred, gt, void)) == pytest.approx(2 / 6)
    void[:] = True
    assert float(region_similarity(pred, gt, void)) == 1.0  # everything void -> empty union


def test_region_similarity_shapes() -> None:
    pred = np.zeros((5, 6, 7), bool)
    gt = np.ones((5, 6, 7), bool)
    gt[2] = False
    out = region_similarity(pred, gt)
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, [0, 0, 1, 0, 0])
    assert region_similarity(pred[0], gt[0]).shape == ()
    with pytest.raises(ValueError, match="does not match"):
        region_similarity(pred, gt[:, :5])


# ------------------------------------------------------------------------------------------------ F


@pytest.mark.parametrize("size", SIZES)
def test_boundary_identical_and_empty(size: tuple[int, int]) -> None:
    h, w = size
    a = np.zeros((h, w), bool)
    a[1 : h // 2, 2 : w // 2] = True
    empty = np.zeros((h, w), bool)
    full = np.ones((h, w), bool)
    assert float(boundary_measure(a, a)) == 1.0
    assert float(boundary_measure(empty, empty)) == 1.0  # no boundary on either side
    assert float(boundary_measure(a, empty)) == 0.0  # precision 0, recall 1
    assert float(boundary_measure(empty, a)) == 0.0  # precision 1, recall 0
    # The image border is never a boundary, so a full-frame mask has none: F(full, empty) == 1
    # although J == 0 (a quirk of the official boundary extraction).
    assert float(boundary_measure(full, empty)) == 1.0
    assert float(region_similarity(full, empty)) == 0.0


@pytest.mark.parametrize("size", [(20, 30), (33, 17), (48, 64)])
@pytest.mark.parametrize("shift", [(0, 1), (2, -3), (5, 4), (9, 0)])
@pytest.mark.parametrize("bound_th", [0.008, 0.05, 2])
def test_boundary_shifted_matches_brute_force(
    size: tuple[int, int], shift: tuple[int, int], bound_th: float
) -> None:
    h, w = size
    gt = _ellipse(h, w, h / 2, w / 2, h / 3, w / 4)
    pred = np.roll(gt, shift, axis=(0, 1))
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
    assert float(boundary_measure(pred, gt, bound_th=bound_th)) == pytest.approx(_brute_f(pred, gt, radius))


def test_boundary_void_and_batch() -> None:
    h, w = 24, 32
    gt = _ellipse(h, w, 12, 16, 8, 10)
    pred = np.roll(gt, (0, 6), axis=(0, 1))
    void = np.zeros((h, w), bool)
    void[:, 16:] = True
    # Void pixels are removed from both masks before boundary extraction.
    expected = _brute_f(pred & ~void, gt & ~void, 1)
    assert float(boundary_measure(pred, gt, void)) == pytest.approx(expected)
    batch = boundary_measure(np.stack([pred, gt]), np.stack([gt, gt]))
    assert batch.shape == (2,)
    assert batch[1] == 1.0


def test_frames_match_official_reference() -> None:
    pairs = _reference_frames()
    j = [float(region_similarity(p, g)) for p, g in pairs]
    f = [float(boundary_measure(p, g)) for p, g in pairs]
    np.testing.assert_allclose(j, REF_FRAMES_J, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f, REF_FRAMES_F, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ statistics


def test_mean_and_recall() -> None:
    assert mean(np.array([0.2, np.nan, 0.4])) == pytest.approx(0.3)
    assert math.isnan(mean(np.array([])))
    # Recall is strictly above the threshold; NaN frames count as failures.
    assert recall(np.array([0.5, 0.6, 0.4, 1.0])) == 0.5
    assert recall(np.array([np.nan, 0.9])) == 0.5
    assert recall(np.array([0.7, 0.8]), threshold=0.75) == 0.5


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # N=4: edges round(linspace(1,4,5)+1e-10)-1 = [0,1,2,2,3]; first bin [0:2], last bin [2:4].
        ([1.0, 0.8, 0.6, 0.2], 0.9 - 0.4),
        # N=3: edges [0,1,1,2,2]; first bin [0:2], last bin [2:3].
        ([1.0, 0.5, 0.2], 0.75 - 0.2),
        # N=1: every bin is the single frame.
        ([0.3], 0.0),
        # N=8: edges [0,2,4,5,7]; first bin [0:3], last bin [5:8].
        ([1, 1, 1, 0, 0, 0.5, 0.5, 0.5], 0.5),
    ],
)
def test_decay_crafted(values: list[float], expected: float) -> None:
    assert decay(np.array(values, float)) == pytest.approx(expected)


def test_decay_long_sequence_wraps_like_official() -> None:
    # The official code stores bin edges as uint8, so they wrap for > 256 frames: with 300 frames the
    # last bin is values[224:44], empty, and the decay is NaN. References from davis2017-evaluation
    # utils.db_statistics on the same inputs.
    assert math.isnan(decay(np.linspace(1.0, 0.0, 300)))
    assert decay(np.linspace(1.0, 0.0, 200)) == pytest.approx(0.7487437185929647, abs=1e-12)


# -------------------------------------------------------------------------------- evaluate_sequence


@pytest.mark.parametrize("size", [(16, 20), (33, 47)])
def test_evaluate_sequence_excludes_first_and_last(size: tuple[int, int]) -> None:
    h, w = size
    t_len = 6
    gt = np.zeros((t_len, h, w), np.uint8)
    gt[:, 2:8, 3:9] = 1
    pred = gt.copy()
    pred[0] = 0  # wrong first and last frames are not evaluated
    pred[-1, :, :] = 1
    scores = evaluate_sequence(gt, pred)
    assert list(scores) == [1]
    s = scores[1]
    assert s.J.shape == s.F.shape == (t_len - 2,)
    assert (s.J_mean, s.J_recall, s.J_decay) == (1.0, 1.0, 0.0)
    assert (s.F_mean, s.F_recall, s.F_decay) == (1.0, 1.0, 0.0)
    d = s.to_dict()
    assert set(d) == {"J", "F", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"}


def test_evaluate_sequence_object_enumeration() -> None:
    t_len, h, w = 5, 20, 24
    gt = np.zeros((t_len, h, w), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, 10:16, 12:20] = 3  # ids {1, 3} in frame 0 -> objects 1, 2, 3 are evaluated
    gt[1:, 0:2, 20:24] = 4  # id 4 only after frame 0 -> ignored
    gt[:, 8, :] = 255  # void is background and never an object
    pred = np.zeros_like(gt)
    pred[:, 2:6, 2:6] = 1  # object 1 perfect; object 3 missing from the prediction
    scores = evaluate_sequence(gt, pred)
    assert list(scores) == [1, 2, 3]
    assert scores[1].J_mean == 1.0
    # Object 2 is empty in both ground truth and prediction: J = F = 1 on every frame.
    assert scores[2].J_mean == 1.0 and scores[2].F_mean == 1.0
    assert scores[3].J_mean == 0.0 and scores[3].F_mean == 0.0

    # A predicted id above the number of objects is refused (only frames 1..T-2 are looked at).
    bad = pred.copy()
    bad[0, 0, 0] = 9
    bad[-1, 0, 0] = 9
    assert list(evaluate_sequence(gt, bad)) == [1, 2, 3]
    bad[2, 0, 0] = 4
    with pytest.raises(ValueError, match="object id 4"):
        evaluate_sequence(gt, bad)


def test_evaluate_sequence_validation() -> None:
    gt = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="at least 3 frames"):
        evaluate_sequence(gt, gt)
    with pytest.raises(ValueError, match="does not match"):
        evaluate_sequence(np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 9), np.uint8))
    assert evaluate_sequence(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8)) == {}


def test_evaluate_sequence_matches_official_reference() -> None:
    gt, pred = _reference_sequence()
    scores = evaluate_sequence(gt, pred)
    assert list(scores) == list(REF_SEQUENCE)
    for obj, ref in REF_SEQUENCE.items():
        s = scores[obj]
        got = (s.J_mean, s.J_recall, s.J_decay, s.F_mean, s.F_recall, s.F_decay)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=f"object {obj}")


# -------------------------------------------------------------------------------------- summarize


def _scores(j: list[float], f: list[float]) -> ObjectScores:
    return ObjectScores.from_frames(np.array(j), np.array(f))


def test_summarize_keys_ranges_and_table() -> None:
    per_sequence = {
        "cows": {1: _scores([1.0, 0.8, 0.6, 0.4], [0.9, 0.9, 0.5, 0.1])},
        "dogs": {1: _scores([0.2, 0.2], [0.0, 1.0]), 2: _scores([0.7], [0.6])},
    }
    g, table = summarize(per_sequence)
    assert (
        tuple(g)
        == GLOBAL_KEYS
        == ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
    )
    # Averages are over all objects of all sequences (3 objects here), not per sequence.
    assert g["J_mean"] == pytest.approx((0.7 + 0.2 + 0.7) / 3)
    assert g["F_mean"] == pytest.approx((0.6 + 0.5 + 0.6) / 3)
    assert g["JF_mean"] == pytest.approx((g["J_mean"] + g["F_mean"]) / 2)
    for key in ("JF_mean", "J_mean", "J_recall", "F_mean", "F_recall"):
        assert 0.0 <= g[key] <= 1.0
    assert -1.0 <= g["J_decay"] <= 1.0 and -1.0 <= g["F_decay"] <= 1.0
    assert list(table.columns) == list(PER_OBJECT_COLUMNS) == ["Sequence", "J-Mean", "F-Mean"]
    assert table["Sequence"].tolist() == ["cows_1", "dogs_1", "dogs_2"]
    np.testing.assert_allclose(table["J-Mean"], [0.7, 0.2, 0.7])

    gt_table = global_table(g)
    assert list(gt_table.columns) == list(GLOBAL_COLUMNS)
    assert list(GLOBAL_COLUMNS) == [
        "J&F-Mean",
        "J-Mean",
        "J-Recall",
        "J-Decay",
        "F-Mean",
        "F-Recall",
        "F-Decay",
    ]
    assert len(gt_table) == 1 and gt_table["J&F-Mean"].iloc[0] == g["JF_mean"]
    assert isinstance(gt_table, pd.DataFrame)


def test_summarize_empty_raises() -> None:
    with pytest.raises(ValueError, match="no objects"):
        summarize({"empty": {}})
