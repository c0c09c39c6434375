"""Overlays of predicted masks on frames (for reports and MLflow)."""

from __future__ import annotations

import numpy as np

from sfc.evaluation.davis.reader import DAVIS_PALETTE


def overlay(frame: np.ndarray, mask: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend object colours (DAVIS palette) over a frame, background untouched.

    Args:
        frame: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8 object ids (0 = background).
        alpha: opacity of the object colours.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if frame.shape[:2] != mask.shape:
        raise ValueError(f"frame {frame.shape[:2]} and mask {mask.shape} differ in size")
    out = frame.astype(np.float32)
    colours = DAVIS_PALETTE[mask].astype(np.float32)
    fg = mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    return out.clip(0, 255).astype(np.uint8)
