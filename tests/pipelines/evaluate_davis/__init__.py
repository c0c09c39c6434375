"""Tests of the ``evaluate_davis`` pipeline.

The parameter dicts below are the small CPU configuration shared by the node and pipeline tests
(random-init ResNet-18, short propagation window) on the ``tiny_davis`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import TINY_DAVIS_KWARGS

BACKBONE: dict[str, Any] = {"arch": "resnet18", "checkpoint": None, "seed": 0}
PROPAGATION: dict[str, Any] = {"topk": 5, "temperature": 0.05, "radius": 4, "context": 3}
RUNTIME: dict[str, Any] = {"device": "cpu", "eval_workers": 1, "overlays": 2}
SEMANTIC: dict[str, Any] = {"arch": None, "checkpoint": None, "seed": 0}  # no second network
FUSION: dict[str, Any] = {"lambda": 1.75, "align": "error"}
SEQUENCES = ["demo-00", "demo-01"]  # tiny_davis, in split order
N_FRAMES: int = TINY_DAVIS_KWARGS["n_frames"]  # type: ignore[assignment]  # frames per sequence


def davis_params(root: Path, **overrides: Any) -> dict[str, Any]:
    """``params:davis`` for a DAVIS root (split ``val``, every sequence, all frames, native scale)."""
    return {
        "root": str(root),
        "split": "val",
        "sequences": None,
        "max_frames": None,
        "scale": 1.0,
        **overrides,
    }
