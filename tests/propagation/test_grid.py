"""Tests of :mod:`sfc.propagation.grid`: the shared-similarity fusion grid equals the straightforward path.

The straightforward path is what ``evaluate_davis`` does for one configuration: fuse the two feature
maps with :func:`sfc.fusion.late_fusion` (SFC eq. 7) and propagate with the windowed engine
(:func:`sfc.propagation.engine.propagate`), which is itself tested against the full-affinity
reference. Every configuration of a grid must give the same soft labels (float tolerance) and the
same argmax, over lambdas (incl. 0), top-k's (incl. 1), radii (fractional, below one cell, larger
than the image), temperatures and contexts (0, shorter and longer than the video), odd grid sizes,
several tiles, with and without the tile thread pool.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sfc.fusion import late_fusion
from sfc.propagation.engine import propagate
from sfc.propagation.grid import FusionGridPropagator, GridPoint, iter_grid_propagate, make_grid


def _features(T: int, C: int, h: int, w: int, seed: int) -> torch.Tensor:
    """(T, C, h, w) random L2-normalised features, temporally coherent (realistic top-k sets)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(1, C, h, w, generator=gen)
    drift = torch.randn(T, C, h, w, generator=gen)
    return F.normalize(base + 0.6 * drift, dim=1)


def _labels(h: int, w: int, K: int, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, K, (h, w), generator=gen), K).float()


def _run_grid(sem, fine, labels, points, tile=None) -> list[torch.Tensor]:
    """(P, T, h, w, K) stacked per configuration."""
    frames = list(iter_grid_propagate(zip(sem, fine, strict=True), labels, points, tile=tile))
    return [torch.stack([f[p] for f in frames]) for p in range(len(points))]


def _straightforward(sem, fine, labels, p: GridPoint, tile=None) -> torch.Tensor:
    fused = late_fusion(sem, fine, p.lam)
    return propagate(
        fused, labels, topk=p.topk, temperature=p.temperature, radius=p.radius, context=p.context, tile=tile
    )


CASES = [
    # (T, Cs, Cf, h, w, lambdas, topks, radii, temperatures, contexts, tile)
    (7, 12, 8, 9, 11, [0.0, 0.5, 1.75, 4.0], [1, 3, 5], [1.5, 3.0, 4.2], [0.07], [3], (4, 4)),
    (6, 8, 6, 7, 13, [1.0, 2.0], [2, 6], [0.5, 2.0, 30.0], [0.05, 0.2], [0, 2, 4], (3, 5)),
    (5, 10, 6, 10, 6, [1.75], [4, 10], [2.5], [0.1], [8], (8, 8)),  # context longer than the video
    (8, 6, 10, 5, 9, [0.3, 3.0], [1, 7], [1.0, 2.0], [0.1], [1, 5], None),  # m < M subsets of the ring
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("threads", [1, 2])
def test_grid_equals_straightforward_fused_propagation(case, threads, monkeypatch) -> None:
    T, Cs, Cf, h, w, lams, ks, rs, taus, ms, tile = case
    if threads == 1:
        monkeypatch.setenv("SFC_TILE_THREADS", "1")
    sem = _features(T, Cs, h, w, seed=1)
    fine = _features(T, Cf, h, w, seed=2)
    labels = _labels(h, w, 4)
    points = make_grid(lams, ks, rs, taus, ms)
    got = _run_grid(sem, fine, labels, points, tile=tile)
    for p, out in zip(points, got, strict=True):
        want = _straightforward(sem, fine, labels, p, tile=tile)
        torch.testing.assert_close(out, want, atol=2e-5, rtol=0, msg=lambda m, p=p: f"{p}: {m}")
        assert torch.equal(out.argmax(-1), want.argmax(-1)), p


def test_single_point_grid_equals_engine_and_labels_are_convex() -> None:
    T, h, w = 6, 8, 9
    sem, fine, labels = _features(T, 16, h, w, 5), _features(T, 8, h, w, 6), _labels(h, w, 3)
    p = GridPoint(lam=1.75, topk=5, radius=3.0, temperature=0.1, context=4)
    (out,) = _run_grid(sem, fine, labels, [p])
    torch.testing.assert_close(out, _straightforward(sem, fine, labels, p), atol=2e-5, rtol=0)
    assert torch.equal(out[0], labels)
    torch.testing.assert_close(out.sum(-1), torch.ones(T, h, w))
    assert (out >= 0).all()


def test_make_grid_order_dedup_and_errors() -> None:
    pts = make_grid([1.0, 2.0, 1.0], [5, 10], [12], [0.1], [20])
    assert [(p.lam, p.topk) for p in pts] == [(1.0, 5), (1.0, 10), (2.0, 5), (2.0, 10)]
    assert pts[0].as_dict() == {"lambda": 1.0, "topk": 5, "radius": 12.0, "temperature": 0.1, "context": 20}
    with pytest.raises(ValueError, match="empty: `topks`"):
        make_grid([1.0], [], [12], [0.1], [20])
    with pytest.raises(ValueError, match="lambda"):
        make_grid([-1.0], [5], [12], [0.1], [20])
    with pytest.raises(ValueError, match="temperature"):
        make_grid([1.0], [5], [12], [0.0], [20])
    with pytest.raises(ValueError, match="top-k"):
        make_grid([1.0], [0], [12], [0.1], [20])


def test_different_spatial_sizes_and_bad_frames_are_refused() -> None:
    labels = _labels(6, 6, 2)
    p = [GridPoint(1.0, 3, 2.0, 0.1, 2)]
    with pytest.raises(ValueError, match="different spatial sizes"):
        FusionGridPropagator(_features(1, 4, 6, 6, 0)[0], _features(1, 4, 3, 3, 0)[0], labels, p)
    with pytest.raises(ValueError, match="empty"):
        FusionGridPropagator(_features(1, 4, 6, 6, 0)[0], _features(1, 4, 6, 6, 1)[0], labels, [])
    with pytest.raises(ValueError, match="exceeds"):
        FusionGridPropagator(
            _features(1, 4, 6, 6, 0)[0], _features(1, 4, 6, 6, 1)[0], labels, [GridPoint(1.0, 40, 2.0, 0.1, 2)]
        )
    prop = FusionGridPropagator(_features(1, 4, 6, 6, 0)[0], _features(1, 5, 6, 6, 1)[0], labels, p)
    with pytest.raises(ValueError, match="frame 1: fine features"):
        prop.step(_features(1, 4, 6, 6, 2)[0], _features(1, 4, 6, 6, 3)[0])
