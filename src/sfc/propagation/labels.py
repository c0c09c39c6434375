"""Label resampling between image and feature resolution, as the official SFC/CRW code does it.

* Down: the first frame's one-hot masks (H, W, K) are resized to the feature grid with bilinear
  interpolation (half-pixel centres, no antialiasing: ``cv2.resize(..., INTER_LINEAR)`` in CRW's
  ``vos.py``), giving soft labels.
* Up: propagated soft maps (h, w, K) are resized bilinearly (same convention) to the output
  resolution, then argmax over K (CRW ``dump_predictions``). Ties go to the lowest channel.

``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)`` with an
explicit output size uses the same sampling positions as OpenCV's INTER_LINEAR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downsample_labels(onehot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize one-hot masks to the feature grid.

    Args:
        onehot: (H, W, K) float one-hot (channel 0 = background).
        size: (h, w) feature-map size.

    Returns:
        (h, w, K) float32 soft labels.
    """
    x = onehot.to(torch.float32).permute(2, 0, 1).unsqueeze(0)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0).contiguous()


def upsample_argmax(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize soft label maps to ``size`` and take the argmax.

    Args:
        soft: (h, w, K) soft labels.
        size: (H, W) output resolution.

    Returns:
        (H, W) int64 channel indices.
    """
    x = soft.to(torch.float32).permute(2, 0, 1).unsqueeze(0)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0]
    return argmax_channels(y)


def argmax_channels(y: torch.Tensor) -> torch.Tensor:
    """``y.argmax(dim=0)`` for (K, H, W) maps with few channels, ~10x faster on CPU.

    Why: a reduction over the outer dimension of a (K, H, W) tensor runs at ~70 ms for K=5 at 480p on
    CPU (strided), while K running elementwise comparisons take ~7 ms. The first maximum wins on ties,
    as with ``argmax`` (strict ``>``).

    Args:
        y: (K, H, W) finite scores.

    Returns:
        (H, W) int64 channel indices.
    """
    best = y[0].clone()
    idx = torch.zeros(y.shape[1:], dtype=torch.long, device=y.device)
    for k in range(1, y.shape[0]):
        better = y[k] > best
        idx.masked_fill_(better, k)
        torch.maximum(best, y[k], out=best)
    return idx
