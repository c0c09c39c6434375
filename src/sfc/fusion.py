"""Late fusion of two dense feature maps (SFC eq. 7).

SFC propagates labels with the concatenation of a semantic map ``Fs`` and a fine-grained (FC) map
``Ff``, each L2-normalised per location, the fine one weighted by ``lambda``, and the result
L2-normalised again::

    F = L2([L2(Fs), lambda * L2(Ff)])          (over channels, at every location)

For unit-norm ``L2(Fs)`` and ``L2(Ff)`` the concatenation has norm ``sqrt(1 + lambda^2)``, so the
cosine similarity of two fused vectors is a fixed blend of the two separate similarities::

    S = (S_s + lambda^2 * S_f) / (1 + lambda^2)

(:func:`fused_similarity`). ``lambda = 0`` is the semantic map alone (its similarities, padded with
zero channels); ``lambda -> inf`` tends to the fine map alone. The paper's DAVIS value is 1.75.
A location whose raw feature is all zero stays zero after ``L2`` (``F.normalize`` semantics), and the
identity then holds with that part's similarity read as 0.

Channel order: the official ``test_vos.py`` builds ``cat((fc_feats * lambd, se_feats), dim=1)``, i.e.
``[lambda * Ff, Fs]``; this module returns ``[Fs, lambda * Ff]`` (the paper's order). The two differ by
a fixed permutation of channels, which leaves every dot product, hence every affinity, top-k and
propagated label, unchanged; only code that compares raw fused vectors with the official ones has to
reorder them (:func:`official_channel_order`).

Both maps must share their spatial size. Backbones of different strides (ViT-S/16: stride 16,
ResNet: stride 8) give different grids; :func:`late_fusion` then raises unless the caller opts in to
``align="resize"``, which resamples the semantic map onto the fine map's grid (:func:`resize_to`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Align = Literal["error", "resize"]

PAPER_LAMBDA_DAVIS = 1.75
"""SFC's fusion weight for DAVIS-2017 (the official ``--lambd`` for VOS)."""


def _check_lambda(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"fusion lambda must be a finite number >= 0 (0 = semantic only), got {lam}")
    return lam


def check_fusion_args(lam: float, align: str) -> float:
    """Validate ``lam`` (finite, >= 0) and ``align`` (``"error"`` / ``"resize"``); return ``float(lam)``."""
    if align not in ("error", "resize"):
        raise ValueError(f"align must be 'error' or 'resize', got {align!r}")
    return _check_lambda(lam)


def _check_map(name: str, x: torch.Tensor) -> None:
    if x.dim() < 3:
        raise ValueError(f"{name} features must be (..., C, h, w); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} features must be floating point; got dtype {x.dtype}")


def resize_to(feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a feature map to ``size`` and re-normalise every location (L2 over channels).

    Bilinear with half-pixel centres (``align_corners=False``, no antialiasing), the convention used
    for labels in :mod:`sfc.propagation.labels`. Interpolated unit vectors are shorter than 1, hence
    the re-normalisation.

    Args:
        feats: (..., C, h, w) float features.
        size: target (h', w').

    Returns:
        (..., C, h', w') features with unit L2 norm over C (zero where the interpolated vector is 0).
        Returned as is (but re-normalised) when the size already matches.
    """
    _check_map("input", feats)
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"target size must be positive, got {size}")
    if tuple(feats.shape[-2:]) != size:
        lead = feats.shape[:-3]
        flat = feats.reshape(-1, *feats.shape[-3:])
        flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
        feats = flat.reshape(*lead, *flat.shape[-3:])
    return F.normalize(feats, dim=-3)


def align_grids(semantic: torch.Tensor, fine: torch.Tensor, align: Align, *, where: str = "") -> torch.Tensor:
    """``semantic`` on ``fine``'s spatial grid, or a clear error.

    Args:
        semantic: (..., Cs, h', w') features.
        fine: (..., Cf, h, w) features whose grid labels live on.
        align: ``"error"``: different grids raise; ``"resize"``: :func:`resize_to` (h, w).
        where: prefix of the error message (e.g. the sequence and frame).

    Returns:
        ``semantic`` itself when the grids match, else the resampled, re-normalised map.

    Raises:
        ValueError: different spatial sizes with ``align="error"``.
    """
    if semantic.shape[-2:] == fine.shape[-2:]:
        return semantic
    if align != "resize":
        raise ValueError(
            f"{where}cannot fuse feature maps of different spatial sizes: semantic (..., C, h, w) = "
            f"{tuple(semantic.shape)} vs fine {tuple(fine.shape)}. The backbones' strides or input scales "
            "differ (e.g. ViT-S/16: 16, ResNet: 8); pass align='resize' (parameter fusion.align=resize) to "
            "resample the semantic map onto the fine grid, or use backbones of equal stride (e.g. ViT-S/8 "
            "with a ResNet)"
        )
    return resize_to(semantic, (fine.shape[-2], fine.shape[-1]))


def late_fusion(
    semantic: torch.Tensor, fine: torch.Tensor, lam: float, *, align: Align = "error"
) -> torch.Tensor:
    """Fuse a semantic and a fine-grained feature map (SFC eq. 7).

    ``F = L2([L2(semantic), lam * L2(fine)])`` over the channel dim (-3) at every location.

    Args:
        semantic: (..., Cs, h, w) semantic features (need not be normalised).
        fine: (..., Cf, h, w) fine-grained (FC) features, same leading dims.
        lam: weight of the fine-grained part, >= 0 (paper, DAVIS: 1.75; 0 = semantic only).
        align: ``"error"`` (default) raises when the spatial sizes differ; ``"resize"`` resamples
            ``semantic`` onto ``fine``'s grid with :func:`resize_to` (the fine map's grid is the one
            labels are propagated on).

    Returns:
        (..., Cs + Cf, h, w) fused features with unit L2 norm per location, channels ``[semantic,
        fine]`` (the official code's order is ``[fine, semantic]``; similarities are identical).

    Raises:
        ValueError: negative / non-finite ``lam``, unknown ``align``, maps that are not (..., C, h, w)
            floats, different leading dims, or different spatial sizes with ``align="error"``.
    """
    lam = check_fusion_args(lam, align)
    _check_map("semantic", semantic)
    _check_map("fine", fine)
    if semantic.shape[:-3] != fine.shape[:-3]:
        raise ValueError(
            f"semantic features {tuple(semantic.shape)} and fine features {tuple(fine.shape)} have "
            "different leading (batch / time) dims"
        )
    semantic = align_grids(semantic, fine, align)
    dtype = torch.promote_types(semantic.dtype, fine.dtype)
    s = F.normalize(semantic.to(dtype), dim=-3)
    f = F.normalize(fine.to(dtype), dim=-3)
    return F.normalize(torch.cat((s, f * lam), dim=-3), dim=-3)


def fused_similarity(sim_semantic: torch.Tensor, sim_fine: torch.Tensor, lam: float) -> torch.Tensor:
    """Cosine similarity of fused vectors from the separate ones: ``(S_s + lam^2 S_f) / (1 + lam^2)``.

    Exact for unit-norm (non-zero) parts, so a grid search over ``lam`` can reuse two similarity
    matrices (or their top-k candidates) computed once instead of re-fusing features.

    Args:
        sim_semantic: cosine similarities of the semantic parts (any shape).
        sim_fine: cosine similarities of the fine parts (same shape).
        lam: fusion weight, >= 0.

    Returns:
        Similarities of the fused features, same shape.
    """
    lam = _check_lambda(lam)
    return (sim_semantic + lam * lam * sim_fine) / (1.0 + lam * lam)


def official_channel_order(fused: torch.Tensor, semantic_channels: int) -> torch.Tensor:
    """Reorder ``[semantic, fine]`` fused channels into the official ``[fine, semantic]`` order.

    Args:
        fused: (..., Cs + Cf, h, w) output of :func:`late_fusion`.
        semantic_channels: Cs.

    Returns:
        The same vectors with channels ``[fine, semantic]`` (what ``test_vos.py`` computes).
    """
    if not 0 <= semantic_channels <= fused.shape[-3]:
        raise ValueError(f"semantic_channels={semantic_channels} outside [0, {fused.shape[-3]}]")
    s, f = fused.split([semantic_channels, fused.shape[-3] - semantic_channels], dim=-3)
    return torch.cat((f, s), dim=-3)
