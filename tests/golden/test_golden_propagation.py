"""Label propagation equals the official SFC / CRW propagation on every golden case.

One test per case of ``propagation/manifest.json`` (the fused case is in ``test_golden_fusion.py``):
the windowed engine :func:`sfc.propagation.engine.propagate` on every case, and the full-affinity
reference :func:`sfc.propagation.reference.propagate_full` on the small ones.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sfc.propagation.engine import propagate
from sfc.propagation.reference import propagate_full
from tests.golden.conftest import (
    FUSION_CASE,
    REALISTIC_CASE,
    GoldenCase,
    assert_matches_expected,
    assert_params_match,
    golden_dir,
    load_case,
    propagation_params,
)


def _run(fn: Any, case: GoldenCase) -> torch.Tensor:
    assert case.features is not None
    return fn(
        torch.from_numpy(case.features),
        torch.from_numpy(case.first_labels),
        topk=case.topk,
        temperature=case.temperature,
        radius=case.radius,
        context=case.context,
    )


@pytest.mark.parametrize("entry", propagation_params(exclude=(FUSION_CASE,)))
def test_engine_matches_official(entry: dict[str, Any] | None) -> None:
    golden_dir("propagation")
    assert entry is not None
    case = load_case(entry)
    assert_params_match(case)
    assert_matches_expected(case, _run(propagate, case), "engine")


@pytest.mark.parametrize("entry", propagation_params(exclude=(FUSION_CASE, REALISTIC_CASE)))
def test_reference_matches_official(entry: dict[str, Any] | None) -> None:
    golden_dir("propagation")
    assert entry is not None
    case = load_case(entry)
    assert_matches_expected(case, _run(propagate_full, case), "full-affinity reference")
