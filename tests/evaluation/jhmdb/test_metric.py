"""Tests of the JHMDB PCK metric :mod:`sfc.evaluation.jhmdb.metric` on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfc.evaluation.jhmdb.metric import (
    THRESHOLDS,
    PckResult,
    metric_name,
    normalised_distances,
    normalisers,
    pck,
    scale_predictions,
    scored_counts,
    video_distances,
    visibility,
)

NAN = math.nan


def test_thresholds_and_names() -> None:
    assert THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert [metric_name(t) for t in THRESHOLDS] == ["PCK_0.1", "PCK_0.2", "PCK_0.3", "PCK_0.4", "PCK_0.5"]


def test_visibility_from_predicted_x_only() -> None:
    pred = np.array([[[-1.0, 0.0, -0.25, 3.0]], [[-1.0, -1.0, 12.0, -5.0]]], dtype=np.float32)  # (2, 1, 4)
    vis = visibility(pred)
    assert vis.dtype == np.float64
    np.testing.assert_array_equal(vis, [[0.0, 1.0, 0.0, 1.0]])  # y < 0 is visible, x = 0 is visible
    with pytest.raises(ValueError, match=r"shape \(2, joints, T\)"):
        visibility(np.zeros((15, 4)))


def test_scale_predictions_float32() -> None:
    pred = np.array([[[20.0, -1.0]], [[10.0, 39.0]]], dtype=np.float32)
    out = scale_predictions(pred, (240, 320))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0], [160.0, 60.0])
    assert out[0, 0, 1] == np.float32(np.float32(-1.0 / 40.0) * 320)
    assert out[1, 0, 1] == np.float32(np.float32(np.float32(39.0) / np.float32(40.0)) * np.float32(240))
    np.testing.assert_array_equal(pred, [[[20.0, -1.0]], [[10.0, 39.0]]])  # not modified
    # a 64 x 96 input at stride 8: divisors 12 (x) and 8 (y)
    scaled = scale_predictions(pred, (240, 320), (12.0, 8.0))[:, 0, 0]
    np.testing.assert_array_equal(scaled, np.array([np.float32(np.float32(20 / 12) * 320), 300.0], np.float32))


def test_normalisers_box_of_visible_joints() -> None:
    gt0 = np.array([[[0.0], [30.0], [500.0]], [[0.0], [40.0], [500.0]]])  # (2, 3, 1)
    np.testing.assert_array_equal(normalisers(gt0, np.array([[1.0], [1.0], [0.0]])), [0.6 * 50.0])
    assert normalisers(gt0, np.ones((3, 1)))[0] == pytest.approx(0.6 * math.hypot(500, 500))


def test_normalisers_start_values_quirk() -> None:
    # every visible GT x < -1: max x stays at its start value -1 (official quirk)
    gt0 = np.array([[[-10.0], [-5.0]], [[0.0], [8.0]]])
    box = normalisers(gt0, np.ones((2, 1)))
    assert box[0] == 0.6 * math.sqrt(9.0**2 + 8.0**2)
    # no visible joint: the untouched start values (unused: nothing is scored in that frame)
    assert normalisers(gt0, np.zeros((2, 1)))[0] == 0.6 * math.sqrt(2 * (1e6 + 1) ** 2)


def test_normalised_distances_skip_frame_0_and_invisible() -> None:
    gt0 = np.zeros((2, 2, 3))
    pred = np.zeros((2, 2, 3), dtype=np.float32)
    pred[0, 0, :] = 3.0
    pred[1, 0, :] = 4.0  # distance 5
    visible = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    d = normalised_distances(pred, gt0, visible, np.array([1.0, 10.0, 50.0]))
    np.testing.assert_array_equal(d, [[NAN, 0.5, 0.1], [NAN, NAN, 0.0]])


def test_normalised_distances_zero_box() -> None:
    gt0 = np.zeros((2, 2, 2))
    pred = np.zeros((2, 2, 2), dtype=np.float32)
    pred[0, 1, 1] = 1.0
    d = normalised_distances(pred, gt0, np.ones((2, 2)), np.zeros(2))
    # d / 0 = inf; 0 / 0 (officially nan) is inf too: counted, never correct
    np.testing.assert_array_equal(d[:, 1], [math.inf, math.inf])
    assert pck([d])[0].tolist() == [0.0, 0.0, 0.0]


def test_pck_inclusive_threshold_and_mean_of_joints() -> None:
    # joint 0: 1 entry at exactly 0.1 (inclusive); joint 1: 3 entries, 1 within 0.1
    d = np.array([[NAN, 0.1, NAN, NAN], [NAN, 0.05, 0.3, 0.2]])
    table = pck([d], thresholds=(0.1, 0.2))
    np.testing.assert_allclose(table, [[100.0, 100 / 3, (100 + 100 / 3) / 2], [100.0, 200 / 3, (100 + 200 / 3) / 2]])
    # the mean of per-joint PCKs, not the fraction of all entries (2 / 4 = 50 %)
    assert table[0, -1] != 50.0


def test_pck_pools_videos_in_order() -> None:
    a = np.array([[NAN, 0.05, 0.5]])
    b = np.array([[NAN, 0.5, 0.5, 0.05]])
    np.testing.assert_allclose(pck([a, b], thresholds=(0.1,)), [[40.0, 40.0]])  # 2 of 5 pooled entries
    assert scored_counts([a, b]).tolist() == [5]


def test_pck_joint_never_scored_is_nan() -> None:
    a = np.array([[NAN, 0.05], [NAN, NAN], [NAN, 0.5]])
    b = np.array([[NAN, 0.05, 0.05], [NAN, NAN, NAN], [NAN, 0.05, NAN]])
    table = pck([a, b], thresholds=(0.1, 0.6))
    assert np.isnan(table[:, 1]).all()
    np.testing.assert_allclose(table[:, [0, 2, 3]], [[100.0, 50.0, 75.0], [100.0, 100.0, 100.0]])
    result = PckResult.from_distances([a, b], thresholds=(0.1, 0.6))
    assert result.unscored_joints == [1]
    assert result.scored.tolist() == [3, 0, 2]
    assert result.mean == {0.1: 75.0, 0.6: 100.0}
    assert result.metrics() == {"PCK_0.1": 75.0, "PCK_0.6": 100.0}
    none_scored = pck([np.full((2, 3), NAN)], thresholds=(0.1,))
    assert np.isnan(none_scored).all()


def test_pck_input_errors() -> None:
    with pytest.raises(ValueError, match="at least one video"):
        pck([])
    with pytest.raises(ValueError, match="joints=2"):
        pck([np.zeros((2, 3)), np.zeros((3, 3))])


def test_video_distances_chain() -> None:
    # three joints at their GT (1-based 11/31/61, 11/41/81) in every frame, joint 1 lost (x = -1) in frame 2
    gt_x, gt_y = np.array([11.0, 31.0, 61.0]), np.array([11.0, 41.0, 81.0])
    pos_img = np.stack([np.repeat(gt_x[:, None], 3, 1), np.repeat(gt_y[:, None], 3, 1)])
    pred = np.stack([np.repeat(((gt_x - 1) / 320 * 40)[:, None], 4, 1), np.repeat(((gt_y - 1) / 240 * 40)[:, None], 4, 1)])
    pred = pred.astype(np.float32)  # one extra frame: ignored, as the official loops
    pred[0, 0, 1] += 4.0  # joint 0, frame 1: 4 cells = 32 px off in x
    pred[:, 1, 2] = -1
    d = video_distances(pred, pos_img, (240, 320))
    assert d.shape == (3, 3)
    assert np.isnan(d[:, 0]).all() and np.isnan(d[1, 2])
    assert d[0, 1] == pytest.approx(32 / (0.6 * math.hypot(50, 70)), rel=1e-6)  # GT box 50 x 70 (0-based)
    np.testing.assert_allclose(d[[1, 2], 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(d[[0, 2], 2], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="expected predictions of shape"):
        video_distances(pred[:, :, :2], pos_img, (240, 320))
