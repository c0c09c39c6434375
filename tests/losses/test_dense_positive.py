"""Tests of the positive mask (against a brute-force loop) and of the dense positive-radius loss."""

from __future__ import annotations

import math

import pytest
import torch

from sfc.losses import bin_diagonal, cell_centres, dense_positive_loss, positive_mask


def _random_boxes(n: int, gen: torch.Generator, *, flip_prob: float = 0.5) -> torch.Tensor:
    """Random crop boxes in [0, 1]^2 (float64), x1/x2 swapped for flipped views."""
    lo = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 0.8
    size = 0.05 + torch.rand(n, 2, generator=gen, dtype=torch.float64) * (1 - lo - 0.05)
    boxes = torch.cat([lo, lo + size], dim=1)
    flip = torch.rand(n, generator=gen) < flip_prob
    boxes[flip] = boxes[flip][:, [2, 1, 0, 3]]
    return boxes


def _brute_force_mask(b1: list[float], b2: list[float], h: int, w: int, radius: float) -> tuple[list, list]:
    """Positive pairs by explicit loops in Python floats; also returns the normalised distances."""

    def centres(box: list[float]) -> list[tuple[float, float]]:
        bw, bh = (box[2] - box[0]) / w, (box[3] - box[1]) / h
        return [((x + 0.5) * bw + box[0], (y + 0.5) * bh + box[1]) for y in range(h) for x in range(w)]

    def diag(box: list[float]) -> float:
        return math.sqrt(((box[2] - box[0]) / w) ** 2 + ((box[3] - box[1]) / h) ** 2)

    c1, c2, d = centres(b1), centres(b2), max(diag(b1), diag(b2))
    dist = [[math.hypot(p[0] - q[0], p[1] - q[1]) / d for q in c2] for p in c1]
    return [[v < radius for v in row] for row in dist], dist


@pytest.mark.parametrize("feat_size", [(4, 4), (3, 5), (6, 2)])
@pytest.mark.parametrize("radius", [0.5, 1.3])
@pytest.mark.parametrize("flip_prob", [0.0, 1.0, 0.5])
def test_positive_mask_matches_brute_force(
    feat_size: tuple[int, int], radius: float, flip_prob: float
) -> None:
    gen = torch.Generator().manual_seed(hash((feat_size, radius, flip_prob)) % 2**31)
    boxes1, boxes2 = _random_boxes(6, gen, flip_prob=flip_prob), _random_boxes(6, gen, flip_prob=flip_prob)
    mask = positive_mask(boxes1, boxes2, feat_size, radius)
    h, w = feat_size
    assert mask.shape == (6, h * w, h * w) and mask.dtype == torch.bool
    for b in range(6):
        expected, dist = _brute_force_mask(boxes1[b].tolist(), boxes2[b].tolist(), h, w, radius)
        for i in range(h * w):
            for j in range(h * w):
                if abs(dist[i][j] - radius) > 1e-9:  # exact ties may round either way
                    assert bool(mask[b, i, j]) == expected[i][j], (b, i, j, dist[i][j])


def test_positive_mask_is_symmetric_under_swapping_views() -> None:
    gen = torch.Generator().manual_seed(3)
    b1, b2 = _random_boxes(8, gen), _random_boxes(8, gen)
    assert torch.equal(positive_mask(b2, b1, (5, 5)), positive_mask(b1, b2, (5, 5)).transpose(1, 2))


def test_identical_square_boxes_pair_each_cell_with_itself_only() -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    mask = positive_mask(boxes, boxes, 4)
    # Neighbours are one bin apart, i.e. 1/sqrt(2) diagonals > 0.5.
    assert torch.equal(mask, torch.eye(16, dtype=torch.bool).expand(2, -1, -1))


def test_flipped_view_maps_cells_mirrored() -> None:
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    flipped = box[:, [2, 1, 0, 3]]
    mask = positive_mask(box, flipped, (2, 3))
    # Cell (y, x) of the plain view matches cell (y, 2 - x) of the flipped one.
    expected = torch.zeros(6, 6, dtype=torch.bool)
    for y in range(2):
        for x in range(3):
            expected[y * 3 + x, y * 3 + (2 - x)] = True
    assert torch.equal(mask[0], expected)


def test_non_overlapping_crops_have_no_positives() -> None:
    left = torch.tensor([[0.0, 0.0, 0.3, 0.3]])
    right = torch.tensor([[0.7, 0.7, 1.0, 1.0]])
    assert not positive_mask(left, right, 4).any()


def test_cell_centres_and_diagonal_of_a_known_box() -> None:
    box = torch.tensor([[0.0, 0.0, 1.0, 0.5]])
    centres = cell_centres(box, (1, 2))
    assert torch.allclose(centres, torch.tensor([[[0.25, 0.25], [0.75, 0.25]]]))
    assert torch.allclose(bin_diagonal(box, (1, 2)), torch.tensor([math.hypot(0.5, 0.5)]))


@pytest.mark.parametrize("shape", [(2, 8, 3, 3), (4, 16, 4, 2)])
def test_loss_range_and_swap_symmetry(shape: tuple[int, int, int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    b, _, h, w = shape
    p, z = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    mask = positive_mask(_random_boxes(b, gen), _random_boxes(b, gen), (h, w), radius=1.5)
    loss = dense_positive_loss(p, z, mask)
    assert loss.ndim == 0 and torch.isfinite(loss) and -2.0 <= float(loss) <= 2.0
    # cos is symmetric, so exchanging the roles of the two views transposes the mask.
    assert torch.allclose(loss, dense_positive_loss(z, p, mask.transpose(1, 2)), atol=1e-6)
    # Invariant to the feature scale (cosine similarity).
    assert torch.allclose(loss, dense_positive_loss(3.0 * p, 0.5 * z, mask), atol=1e-6)


def test_loss_is_minimal_for_identical_features() -> None:
    gen = torch.Generator().manual_seed(1)
    p = torch.randn(3, 8, 4, 4, generator=gen)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.6, 0.6], [0.5, 0.1, 0.9, 0.5]])
    mask = positive_mask(boxes, boxes, 4)
    loss = dense_positive_loss(p, p.clone(), mask)
    # 16 positive pairs per sample: -2 * 16 / (16 + 1e-6).
    assert float(loss) == pytest.approx(-2.0, abs=1e-6)
    assert float(dense_positive_loss(p, -p, mask)) == pytest.approx(2.0, abs=1e-6)


def test_samples_without_positives_count_as_zero_in_the_mean() -> None:
    p = torch.randn(2, 4, 2, 2)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0] = torch.eye(4, dtype=torch.bool)  # sample 1 has no positive pair
    loss = dense_positive_loss(p, p, mask)
    assert float(loss) == pytest.approx(-1.0, abs=1e-6)  # (-2 + 0) / 2, as the official code


def test_loss_gradient_is_finite_and_reaches_only_p() -> None:
    p = torch.randn(2, 4, 3, 3, requires_grad=True)
    z = torch.randn(2, 4, 3, 3)
    mask = positive_mask(torch.tensor([[0, 0, 1, 1.0]] * 2), torch.tensor([[0.1, 0, 0.9, 1.0]] * 2), 3)
    dense_positive_loss(p, z, mask).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="mask: expected shape"):
        dense_positive_loss(
            torch.randn(1, 2, 2, 2), torch.randn(1, 2, 2, 2), torch.ones(1, 3, 3, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match=r"\(B, 4\) boxes"):
        positive_mask(torch.zeros(2, 3), torch.zeros(2, 4), 2)
