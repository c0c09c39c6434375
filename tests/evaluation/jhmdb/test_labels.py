"""Tests of the JHMDB joint encoding / decoding :mod:`sfc.evaluation.jhmdb.labels` (exactness: golden tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sfc.evaluation.jhmdb.labels import decode_joints, draw_labelmap, encode_joints, feature_coords, grid_size

E2, E4 = math.exp(-2), math.exp(-4)


# ------------------------------------------------------------------------------------------- drawing
def test_draw_labelmap_interior_patch() -> None:
    m = np.zeros((30, 40))
    out = draw_labelmap(m, (10.3, 5.6))
    assert out is m  # in place, and returned
    # ul = (int(8.8), int(4.1)) = (8, 4), 4 x 4 patch, peak at patch index 2 -> (row 6, column 10)
    assert m[6, 10] == 1.0
    assert m[6, 9] == m[6, 11] == m[5, 10] == m[7, 10] == pytest.approx(E2)
    assert m[5, 9] == pytest.approx(E4)
    assert np.count_nonzero(m) == 16
    assert np.flatnonzero(m.any(axis=0)).tolist() == [8, 9, 10, 11]
    assert np.flatnonzero(m.any(axis=1)).tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize("x", [1.5, 2.0, 2.49, 7.25, 7.5, 7.75, 19.5])
def test_draw_labelmap_peak_is_nearest_column_away_from_the_border(x: float) -> None:
    m = draw_labelmap(np.zeros((30, 40)), (x, 11.3))
    assert np.unravel_index(m.argmax(), m.shape)[1] == math.floor(x + 0.5)


@pytest.mark.parametrize(
    ("x", "peak_column", "columns"),
    [
        (0.0, 1, [0, 1]),  # ul = int(-1.5) = -1 (truncation, not floor): peak one column right, 2 columns left
        (0.3, 1, [0, 1]),
        (1.2, 2, [0, 1, 2]),  # int(-0.3) = 0 but int(3.7) = 3: only 3 columns drawn
        (-0.6, 0, [0]),  # outside the map: the peak column is still drawn at column 0
        (-1.0, 0, [0]),
    ],
)
def test_draw_labelmap_truncation_at_the_border(x: float, peak_column: int, columns: list[int]) -> None:
    m = draw_labelmap(np.zeros((30, 40)), (x, 11.3))
    assert np.unravel_index(m.argmax(), m.shape)[1] == peak_column
    assert np.flatnonzero(m.any(axis=0)).tolist() == columns


@pytest.mark.parametrize("pt", [(-1.6, 11.3), (-3.6, 11.3), (41.6, 3.2), (42.0, 3.2), (17.7, 31.6), (17.7, -2.0)])
def test_draw_labelmap_nothing_outside(pt: tuple[float, float]) -> None:
    assert not draw_labelmap(np.zeros((30, 40)), pt).any()


def test_draw_labelmap_assigns_instead_of_max() -> None:
    m = draw_labelmap(np.zeros((10, 10)), (4.0, 4.0))
    draw_labelmap(m, (5.0, 4.0))
    assert m[4, 5] == 1.0 and m[4, 4] == pytest.approx(E2)  # the first peak was overwritten


def test_draw_labelmap_on_a_channel_view() -> None:
    maps = np.zeros((10, 12, 3))
    draw_labelmap(maps[:, :, 1], (6.0, 3.0))
    assert maps[3, 6, 1] == 1.0 and not maps[:, :, [0, 2]].any()


# ------------------------------------------------------------------------------------------ coordinates
def test_grid_size() -> None:
    assert grid_size((320, 320)) == (40, 40)
    assert grid_size((100, 427)) == (13, 54)
    assert grid_size((64, 64), stride=16) == (4, 4)


def test_feature_coords_official_320() -> None:
    pos_img = np.array([[1.0, 321.0, 161.5], [1.0, 241.0, 0.0]])  # 1-based, image 240 x 320
    coords = feature_coords(pos_img, (240, 320), (320, 320))
    assert coords.dtype == np.float64
    np.testing.assert_array_equal(coords[0], [0.0, 40.0, (160.5 * 320.0 / 320) / 8])
    np.testing.assert_array_equal(coords[1], [0.0, 240 * 320.0 / 240 / 8, -1 * 320.0 / 240 / 8])
    np.testing.assert_array_equal(pos_img, [[1.0, 321.0, 161.5], [1.0, 241.0, 0.0]])  # not modified


def test_feature_coords_general_size_and_shapes() -> None:
    pos_img = np.random.default_rng(0).uniform(1, 200, size=(2, 15, 4))
    coords = feature_coords(pos_img, (180, 427), (96, 128), stride=8)
    assert coords.shape == (2, 15, 4)
    np.testing.assert_allclose(coords[0], (pos_img[0] - 1) * 128 / 427 / 8)
    np.testing.assert_allclose(coords[1], (pos_img[1] - 1) * 96 / 180 / 8)
    np.testing.assert_array_equal(feature_coords(pos_img[:, :, 2], (180, 427), (96, 128)), coords[:, :, 2])
    with pytest.raises(ValueError, match=r"shape \(2, J\[, T\]\)"):
        feature_coords(np.zeros((3, 15)), (10, 10), (8, 8))


# ------------------------------------------------------------------------------------------ encoding
def test_encode_joints_channels_and_background() -> None:
    coords = np.array([[3.0, 10.0, -5.0], [4.0, 2.0, 1.0]])  # third joint far outside
    maps = encode_joints(coords, (8, 12))
    assert maps.shape == (8, 12, 4) and maps.dtype == np.float32
    assert maps[4, 3, 1] == 1.0 and maps[2, 10, 2] == 1.0
    assert not maps[..., 3].any()  # an empty channel
    joints = maps[..., 1:]
    np.testing.assert_array_equal(maps[..., 0], (joints == 0).all(-1).astype(np.float32))
    assert set(np.unique(maps[..., 0]).tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match=r"shape \(2, J\)"):
        encode_joints(np.zeros((2, 15, 3)), (8, 8))


# ------------------------------------------------------------------------------------------ decoding
def test_decode_empty_channel_is_minus_one() -> None:
    soft = np.zeros((6, 7, 4), dtype=np.float32)
    soft[2, 5, 1] = 0.7  # a single non-zero pixel: exactly its coordinates
    soft[..., 3] = np.random.default_rng(0).random((6, 7))
    coords = decode_joints(soft)
    assert coords.dtype == np.float32 and coords.shape == (2, 3)
    assert coords[:, 0].tolist() == [5.0, 2.0]
    assert coords[:, 1].tolist() == [-1.0, -1.0]
    assert 0 <= coords[0, 2] <= 6 and 0 <= coords[1, 2] <= 5


def test_decode_top3_weighted_mean() -> None:
    soft = np.zeros((5, 5, 2), dtype=np.float32)
    soft[1, 1, 1], soft[1, 3, 1], soft[4, 0, 1], soft[0, 0, 1] = 0.5, 0.3, 0.2, 0.1  # the 0.1 is not in the top 3
    x, y = decode_joints(soft)[:, 0]
    assert x == pytest.approx(0.5 * 1 + 0.3 * 3 + 0.2 * 0, abs=1e-6)
    assert y == pytest.approx(0.5 * 1 + 0.3 * 1 + 0.2 * 4, abs=1e-6)


def test_decode_fewer_pixels_than_topk() -> None:
    soft = np.zeros((1, 2, 2), dtype=np.float32)
    soft[0, :, 1] = [1.0, 3.0]
    np.testing.assert_allclose(decode_joints(soft)[:, 0], [0.75, 0.0])


def test_decode_accepts_tensors_and_leaves_input_alone() -> None:
    soft = torch.rand(8, 9, 16, dtype=torch.float64)
    before = soft.clone()
    coords = decode_joints(soft)
    torch.testing.assert_close(soft, before)
    np.testing.assert_array_equal(coords, decode_joints(soft.numpy().astype(np.float32)))
    with pytest.raises(ValueError, match="soft label map of shape"):
        decode_joints(np.zeros((8, 9)))


def test_round_trip_within_a_fraction_of_a_cell() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        coords = rng.uniform(2, 37, size=(2, 15))
        decoded = decode_joints(encode_joints(coords, (40, 40)))
        # peak at the nearest cell (<= 0.5) pulled toward two tied neighbours (<= e^-2 / (1 + 2 e^-2))
        assert np.abs(decoded - coords).max() <= 0.5 + E2 / (1 + 2 * E2) + 1e-5
    grid = np.array([[3.0, 20.0], [7.0, 11.0]])  # on cell centres only the tie pull remains
    np.testing.assert_allclose(decode_joints(encode_joints(grid, (40, 40))), grid, atol=E2 / (1 + 2 * E2) + 1e-5)
