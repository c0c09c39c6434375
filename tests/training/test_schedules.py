"""Tests of the cosine EMA momentum schedule."""

from __future__ import annotations

import math

import pytest

from sfc.training import ema_momentum


@pytest.mark.parametrize("total", [1, 7, 60_000])
@pytest.mark.parametrize("base", [0.99, 0.996, 0.0])
def test_end_points(total: int, base: float) -> None:
    assert ema_momentum(0, total, base) == pytest.approx(base, abs=1e-12)
    assert ema_momentum(total, total, base) == pytest.approx(1.0, abs=1e-12)
    # Clamped outside [0, total].
    assert ema_momentum(-5, total, base) == ema_momentum(0, total, base)
    assert ema_momentum(total + 5, total, base) == ema_momentum(total, total, base)


def test_monotone_and_cosine_midpoint() -> None:
    values = [ema_momentum(k, 100) for k in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[50] == pytest.approx(0.995, abs=1e-12)
    # Official formula: 1 - (1 - m) * (cos(pi k / K) + 1) / 2.
    assert values[25] == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2, abs=1e-15)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="total_steps"):
        ema_momentum(0, 0)
    with pytest.raises(ValueError, match="base"):
        ema_momentum(0, 10, base=1.5)
