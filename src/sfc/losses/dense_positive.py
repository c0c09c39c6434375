"""The dense positive-radius regression loss of the fine-grained correspondence (FC) network.

SFC appendix A.1 (following PixPro): two crops of one frame give two feature maps of the same size
h x w. Every feature cell is mapped back to the original image through its crop box; a pair (cell i of
view 1, cell j of view 2) is *positive* when the distance between the two cell centres, divided by the
larger of the two views' feature-bin diagonals, is below ``radius`` (0.5 in the paper). The loss
maximises the mean cosine similarity of the online prediction and the target projection over the
positive pairs.

Coordinate convention (official ``transform_coord.RandomResizedCropCoord``): a box is
``(x1, y1, x2, y2)`` in normalised image coordinates, ``x1 = j / (W - 1)``, ``x2 = (j + w - 1) / (W - 1)``
for a crop of ``w`` pixels starting at column ``j`` of a ``W``-pixel-wide image (same for y with the
height). A horizontally flipped view swaps ``x1`` and ``x2`` (PixPro's ``RandomHorizontalFlipCoord``),
so its bin width is negative and cell 0 maps to the right edge of the box. The h x w cells split the
box evenly: the bin of a view is ``((x2 - x1) / w, (y2 - y1) / h)`` and cell ``(y, x)`` is centred at
``(x1 + (x + 0.5) * bin_w, y1 + (y + 0.5) * bin_h)``. Distances are measured in these normalised
coordinates (x and y scaled separately by the image width and height), exactly as the official code.

Cells are flattened row-major (``index = y * w + x``), the order of ``feats.flatten(2)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6
"""Added to the number of positive pairs of a sample before dividing (official value)."""


def _feat_hw(feat_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(feat_size, int):
        return feat_size, feat_size
    h, w = feat_size
    return int(h), int(w)


def _check_boxes(boxes: torch.Tensor, name: str) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected (B, 4) boxes (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")


def cell_centres(boxes: torch.Tensor, feat_size: int | tuple[int, int]) -> torch.Tensor:
    """Centres of the feature cells of each view in normalised original-image coordinates.

    Args:
        boxes: (B, 4) crop boxes ``(x1, y1, x2, y2)`` (module docstring: flipped views have x1 > x2).
        feat_size: feature map size ``(h, w)`` (or one int for a square map).

    Returns:
        (B, h * w, 2) float ``(x, y)`` centres, cells in row-major order.
    """
    _check_boxes(boxes, "boxes")
    h, w = _feat_hw(feat_size)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    x1, y1, x2, y2 = boxes.unbind(-1)
    bin_w = ((x2 - x1) / w).view(-1, 1, 1)
    bin_h = ((y2 - y1) / h).view(-1, 1, 1)
    xs = torch.arange(w, dtype=boxes.dtype, device=boxes.device).view(1, 1, w)
    ys = torch.arange(h, dtype=boxes.dtype, device=boxes.device).view(1, h, 1)
    cx = ((xs + 0.5) * bin_w + x1.view(-1, 1, 1)).expand(-1, h, w)
    cy = ((ys + 0.5) * bin_h + y1.view(-1, 1, 1)).expand(-1, h, w)
    return torch.stack((cx.reshape(-1, h * w), cy.reshape(-1, h * w)), dim=-1)


def bin_diagonal(boxes: torch.Tensor, feat_size: int | tuple[int, int]) -> torch.Tensor:
    """Diagonal of one feature bin of each view, ``sqrt(bin_w**2 + bin_h**2)``.

    Args:
        boxes: (B, 4) crop boxes.
        feat_size: feature map size ``(h, w)``.

    Returns:
        (B,) float diagonals (normalised image units; sign of a flip does not matter).
    """
    _check_boxes(boxes, "boxes")
    h, w = _feat_hw(feat_size)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    bin_w = (boxes[:, 2] - boxes[:, 0]) / w
    bin_h = (boxes[:, 3] - boxes[:, 1]) / h
    return torch.sqrt(bin_w**2 + bin_h**2)


@torch.no_grad()
def positive_mask(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    feat_size: int | tuple[int, int],
    radius: float = 0.5,
) -> torch.Tensor:
    """Positive pairs of feature cells between two views (SFC A.1, PixPro eq. 1).

    ``mask[b, i, j]`` is True when ``||c1_i - c2_j|| / max(diag1, diag2) < radius``, with ``c`` the cell
    centres of :func:`cell_centres` and ``diag`` the bin diagonals of :func:`bin_diagonal`. The relation
    is symmetric: ``positive_mask(b2, b1, ...) == positive_mask(b1, b2, ...).transpose(1, 2)``. Crops that
    do not overlap (closer than the radius) give an all-False slice. Degenerate boxes with a zero bin
    diagonal in both views give no positives (0 / 0 is NaN, and NaN < radius is False, as officially).

    Args:
        boxes1: (B, 4) boxes of view 1 (the query / online prediction side).
        boxes2: (B, 4) boxes of view 2 (the key / target side).
        feat_size: feature map size ``(h, w)`` shared by both views.
        radius: positive radius in units of the larger bin diagonal (paper: 0.5).

    Returns:
        (B, h * w, h * w) bool mask, rows = cells of view 1, columns = cells of view 2.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"boxes1 and boxes2 differ in batch size: {boxes1.shape[0]} vs {boxes2.shape[0]}")
    c1 = cell_centres(boxes1, feat_size)  # (B, N, 2)
    c2 = cell_centres(boxes2, feat_size)
    max_diag = torch.maximum(bin_diagonal(boxes1, feat_size), bin_diagonal(boxes2, feat_size)).view(-1, 1, 1)
    dx = c1[..., 0].unsqueeze(2) - c2[..., 0].unsqueeze(1)
    dy = c1[..., 1].unsqueeze(2) - c2[..., 1].unsqueeze(1)
    # Explicit sqrt of squares (not cdist, whose matmul trick is inexact near the radius boundary).
    return torch.sqrt(dx**2 + dy**2) / max_diag < radius


def dense_positive_loss(
    p: torch.Tensor, z: torch.Tensor, mask: torch.Tensor, *, eps: float = EPS
) -> torch.Tensor:
    """One direction of the FC loss: ``-2 x`` the mean cosine similarity over positive pairs.

    For every sample ``b``: ``s_b = sum_ij mask_bij cos(p_bi, z_bj) / (sum_ij mask_bij + eps)``; the loss
    is ``-2 * mean_b s_b`` (official ``regression_loss``; BYOL's ``2 - 2 cos`` without the constant).

    Range: [-2, 2]. Perfectly aligned features give ``-2 * n / (n + eps)`` (about -2) for a sample with
    ``n`` positive pairs. A sample without any positive pair (non-overlapping crops) contributes
    ``s_b = 0`` and *is still counted* in the batch mean, as in the official code, so it only dilutes the
    loss and its gradient.

    Computed in float32 with autocast disabled (the (h w)^2 similarity sums lose precision in bf16).

    Args:
        p: (B, C, h, w) online predictions of view a (need not be normalised).
        z: (B, C, h, w) target projections of view b (treated as given; detach them yourself).
        mask: (B, h * w, h * w) bool, ``mask[b, i, j]`` pairs cell i of ``p`` with cell j of ``z``
            (:func:`positive_mask` with view a's boxes first).
        eps: added to each sample's number of positive pairs.

    Returns:
        Scalar float32 loss.
    """
    if p.ndim != 4 or p.shape != z.shape:
        raise ValueError(
            f"expected p and z of one (B, C, h, w) shape, got {tuple(p.shape)} and {tuple(z.shape)}"
        )
    b, _, h, w = p.shape
    if mask.shape != (b, h * w, h * w):
        raise ValueError(f"mask: expected shape {(b, h * w, h * w)}, got {tuple(mask.shape)}")
    with torch.autocast(device_type=p.device.type, enabled=False):
        q = F.normalize(p.float().flatten(2), dim=1)  # (B, C, N)
        k = F.normalize(z.float().flatten(2), dim=1)
        cos = torch.bmm(q.transpose(1, 2), k)  # (B, N, N)
        m = mask.to(cos.dtype)
        per_sample = (cos * m).sum(dim=(1, 2)) / (m.sum(dim=(1, 2)) + eps)
        return -2.0 * per_sample.mean()
