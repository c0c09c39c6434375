"""Overlays of predicted label maps on frames (for reports and MLflow)."""

from __future__ import annotations

import numpy as np

from sfc.evaluation.davis.reader import DAVIS_PALETTE

#: Colours of the 20 human-part classes of VIP / CIHP / LIP (id -> RGB), the palette of their tools.
PART_PALETTE = np.array(
    [
        (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
        (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
        (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
    ]
    + [(255, 255, 255)] * 236,
    dtype=np.uint8,
)


def overlay(frame: np.ndarray, mask: np.ndarray, *, alpha: float = 0.5, palette: np.ndarray = DAVIS_PALETTE) -> np.ndarray:
    """Blend label colours over a frame, background (id 0) untouched.

    Args:
        frame: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8 ids (0 = background).
        alpha: opacity of the colours.
        palette: (256, 3) uint8 id -> colour (default: the DAVIS object palette; :data:`PART_PALETTE`
            for human parts).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if frame.shape[:2] != mask.shape:
        raise ValueError(f"frame {frame.shape[:2]} and mask {mask.shape} differ in size")
    out = frame.astype(np.float32)
    colours = palette[mask].astype(np.float32)
    fg = mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    return out.clip(0, 255).astype(np.uint8)
