"""Correspondence maps (SFC Fig. 5): query cells, similarity maps, query points and the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from sfc.fusion import late_fusion
from sfc.viz.correspondence import (
    correspondence_figure,
    correspondence_grid,
    mask_query_points,
    query_cell,
    similarity_maps,
    upsample_map,
)


@pytest.mark.parametrize(
    ("query", "image_hw", "grid_hw", "cell"),
    [
        ((0.0, 0.0), (64, 96), (8, 12), (0, 0)),
        ((7.9, 7.9), (64, 96), (8, 12), (0, 0)),
        ((8.0, 8.0), (64, 96), (8, 12), (1, 1)),
        ((63.0, 95.0), (64, 96), (8, 12), (7, 11)),
        ((64.0, 96.0), (64, 96), (8, 12), (7, 11)),  # on the border: clamped
        ((-3.0, 200.0), (64, 96), (8, 12), (0, 11)),  # outside: clamped
        ((30.0, 50.0), (61, 99), (8, 13), (3, 6)),  # grid not a divisor of the image
    ],
)
def test_query_cell(query: tuple[float, float], image_hw: tuple[int, int], grid_hw: tuple[int, int],
                    cell: tuple[int, int]) -> None:
    assert query_cell(query, image_hw, grid_hw) == cell


def test_query_cell_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        query_cell((1.0, 1.0), (0, 5), (2, 2))
    with pytest.raises(ValueError, match="finite"):
        query_cell((float("nan"), 1.0), (5, 5), (2, 2))


@pytest.mark.parametrize(("c", "h", "w"), [(4, 5, 7), (16, 8, 12), (3, 1, 1)])
def test_similarity_with_itself_peaks_at_the_query_cell(c: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    feats = {"FC": torch.randn(c, h, w) * 3, "semantic": torch.randn(c + 2, h, w)}
    image_hw = (8 * h, 8 * w)
    rng = np.random.default_rng(c)
    for _ in range(5):
        query = (float(rng.uniform(0, image_hw[0])), float(rng.uniform(0, image_hw[1])))
        maps = similarity_maps(feats, feats, query, image_hw)
        assert list(maps) == ["FC", "semantic"]
        cell = query_cell(query, image_hw, (h, w))
        for sim in maps.values():
            assert sim.shape == (h, w) and sim.dtype == np.float32
            assert np.isfinite(sim).all() and sim.max() <= 1 + 1e-5 and sim.min() >= -1 - 1e-5
            assert sim[cell] == pytest.approx(1.0, abs=1e-5)
            assert sim[cell] == pytest.approx(sim.max())


def test_similarity_is_scale_invariant_and_uses_each_grid() -> None:
    torch.manual_seed(1)
    src = {"a": torch.randn(6, 4, 6), "b": torch.randn(3, 2, 3)}  # names may have different grids
    tgt = {"a": torch.randn(6, 4, 6), "b": torch.randn(3, 2, 3)}
    maps = similarity_maps(src, tgt, (10.0, 20.0), (32, 48))
    scaled = similarity_maps({k: v * 5 for k, v in src.items()}, {k: v * 0.1 for k, v in tgt.items()}, (10.0, 20.0),
                             (32, 48))
    assert maps["a"].shape == (4, 6) and maps["b"].shape == (2, 3)
    for k in maps:
        np.testing.assert_allclose(maps[k], scaled[k], atol=1e-5)


def test_fused_similarity_is_the_blend_of_the_parts() -> None:
    """With sfc.fusion.late_fusion, the fused map is (S_s + lam^2 S_f) / (1 + lam^2) (SFC eq. 7)."""
    torch.manual_seed(2)
    sem, fine = torch.randn(2, 5, 4, 6), torch.randn(2, 7, 4, 6)
    lam = 1.75
    fused = late_fusion(sem, fine, lam)
    feats = {"semantic": sem, "FC": fine, "fused": fused}
    maps = similarity_maps({k: v[0] for k, v in feats.items()}, {k: v[1] for k, v in feats.items()}, (9.0, 30.0),
                           (32, 48))
    np.testing.assert_allclose(maps["fused"], (maps["semantic"] + lam**2 * maps["FC"]) / (1 + lam**2), atol=1e-5)


def test_similarity_maps_errors() -> None:
    f = torch.randn(4, 3, 3)
    with pytest.raises(ValueError, match="missing"):
        similarity_maps({"FC": f}, {"other": f}, (0.0, 0.0), (9, 9))
    with pytest.raises(ValueError, match="differ"):
        similarity_maps({"FC": f}, {"FC": torch.randn(4, 3, 4)}, (0.0, 0.0), (9, 9))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        similarity_maps({"FC": f[None]}, {"FC": f[None]}, (0.0, 0.0), (9, 9))


def _blobs() -> np.ndarray:
    mask = np.zeros((40, 60), dtype=np.uint8)
    mask[5:15, 5:15] = 1  # small square
    mask[20:38, 10:55] = 2  # large bar
    mask[2:8, 40:58] = 3
    mask[10:14, 30:33] = 3  # object 3 in two pieces: its centroid is off the object
    return mask


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_query_points_lie_on_objects(n: int) -> None:
    mask = _blobs()
    points = mask_query_points(mask, n)
    assert len(points) == n
    for y, x in points:
        assert mask[int(y), int(x)] > 0
    assert len(set(points)) == n  # distinct


def test_query_points_spread_over_objects_largest_first() -> None:
    mask = _blobs()
    ids = [int(mask[int(y), int(x)]) for y, x in mask_query_points(mask, 3)]
    assert ids == [1, 2, 3]  # one per object, ordered by id
    ids = [int(mask[int(y), int(x)]) for y, x in mask_query_points(mask, 2)]
    assert ids == [2, 3]  # the two largest objects
    ids = [int(mask[int(y), int(x)]) for y, x in mask_query_points(mask, 5)]
    assert ids.count(2) >= 2 and set(ids) == {1, 2, 3}  # extra points go to the large bar


def test_query_points_single_object_and_fallbacks() -> None:
    mask = np.zeros((21, 31), dtype=np.uint8)
    assert mask_query_points(mask, 3) == [(10.0, 15.0)]  # no object: the image centre
    mask[4, 7] = 5
    assert mask_query_points(mask, 3) == [(4.0, 7.0)]  # a one-pixel object holds one point
    mask[10:12, 0:30] = 1
    points = mask_query_points(mask, 3)
    assert [int(mask[int(y), int(x)]) for y, x in points] == [1, 1, 5]  # the bar takes the spare point
    assert abs(points[0][1] - points[1][1]) >= 10  # its two points are spread along it
    with pytest.raises(ValueError, match="at least one"):
        mask_query_points(mask, 0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        mask_query_points(mask[None], 1)


def test_upsample_map_keeps_constant_and_range() -> None:
    sim = np.full((3, 4), 0.25, dtype=np.float32)
    up = upsample_map(sim, (30, 40))
    assert up.shape == (30, 40) and np.allclose(up, 0.25)
    ramp = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    up = upsample_map(ramp, (30, 40))
    assert up.min() >= -1 - 1e-6 and up.max() <= 1 + 1e-6


def test_correspondence_grid_layout() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    tgt = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    feats = {"semantic": torch.randn(5, 6, 8), "FC": torch.randn(4, 6, 8), "fused": torch.randn(9, 6, 8)}
    queries = [(10.0, 10.0), (30.0, 50.0)]
    maps = [similarity_maps(feats, feats, q, (48, 64)) for q in queries]
    fig = correspondence_grid(src, tgt, maps, queries, title="seq: 0 -> 5")
    try:
        assert isinstance(fig, Figure)
        images = [ax for ax in fig.axes if ax.get_images()]
        assert len(images) == 2 * 4  # rows x (source + 3 maps); the other axes are colour bars
        titles = [ax.get_title() for ax in images]
        assert titles[0].startswith("source") and [t.split(":")[0] for t in titles[1:4]] == ["semantic", "FC", "fused"]
        # the map panels show the target and the heatmap, upsampled to the image
        assert images[1].get_images()[1].get_array().shape == (48, 64)
        assert "seq: 0 -> 5" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
    fig = correspondence_figure(src, tgt, maps[0], queries[0])
    try:
        assert len([ax for ax in fig.axes if ax.get_images()]) == 4
    finally:
        plt.close(fig)


def test_correspondence_grid_errors() -> None:
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    m = {"FC": np.zeros((2, 2), dtype=np.float32)}
    with pytest.raises(ValueError, match="at least one"):
        correspondence_grid(img, img, [], [])
    with pytest.raises(ValueError, match="one map dict per query"):
        correspondence_grid(img, img, [m], [(1.0, 1.0), (2.0, 2.0)])
    with pytest.raises(ValueError, match="like query 0"):
        correspondence_grid(img, img, [m, {"other": m["FC"]}], [(1.0, 1.0), (2.0, 2.0)])
