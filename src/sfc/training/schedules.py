"""Schedules of FC training: the EMA momentum of the target network.

The learning rate is constant (SFC A.1: Adam, lr 1e-3, no schedule), so only the momentum has one.
"""

from __future__ import annotations

import math


def ema_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    """Cosine EMA momentum ``1 - (1 - base) * (cos(pi * step / total_steps) + 1) / 2`` (BYOL eq. in A.1).

    Official ``FineGrained._update_momentum_encoder``: the k-th update (k = 0, 1, ...) uses
    ``step = k``, so training starts at ``base`` (0.99) and would reach 1.0 at ``step = total_steps``;
    the value rises monotonically in between.

    Args:
        step: number of optimizer steps done before this update, clamped to [0, total_steps].
        total_steps: length of the schedule (the planned number of training steps).
        base: starting momentum (paper: 0.99).

    Returns:
        Momentum in [base, 1].
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"base momentum must be in [0, 1], got {base}")
    t = min(max(step, 0), total_steps) / total_steps
    return 1.0 - (1.0 - base) * (math.cos(math.pi * t) + 1.0) / 2.0
