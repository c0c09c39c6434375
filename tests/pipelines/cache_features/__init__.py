"""Tests of the ``cache_features`` pipeline (tiny CPU settings on the ``tiny_davis`` fixture)."""

from __future__ import annotations

from typing import Any

BACKBONE: dict[str, Any] = {"arch": "resnet18", "checkpoint": None, "seed": 0}
NO_SEMANTIC: dict[str, Any] = {"arch": None, "checkpoint": None, "seed": 0}
RUNTIME: dict[str, Any] = {"device": "cpu", "eval_workers": 1, "overlays": 2}
CACHE: dict[str, Any] = {"batch_size": 4}
SEQUENCES = ["demo-00", "demo-01"]
