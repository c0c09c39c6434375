"""Late fusion, propagation of fused features and the fusion grid equal the official SFC code.

Everything here reads the ``fusion`` case of ``propagation/``: raw FC and semantic features, the
official fused map (FC channels first) and the official propagation of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sfc.fusion import late_fusion, official_channel_order
from sfc.propagation.engine import propagate
from sfc.propagation.grid import GridPoint, iter_grid_propagate, make_grid
from tests.golden.conftest import (
    FUSION_CASE,
    GoldenCase,
    assert_matches_expected,
    assert_params_match,
    load_named_case,
)


def _case() -> GoldenCase:
    case = load_named_case(FUSION_CASE)
    assert_params_match(case)
    return case


def _fuse(case: GoldenCase) -> torch.Tensor:
    assert case.semantic_features is not None and case.fc_features is not None
    return late_fusion(torch.from_numpy(case.semantic_features), torch.from_numpy(case.fc_features), case.lam)


def test_late_fusion_matches_official() -> None:
    case = _case()
    assert case.semantic_features is not None and case.fused_features is not None
    ours = official_channel_order(_fuse(case), case.semantic_features.shape[1]).numpy()
    max_diff = float(np.abs(ours - case.fused_features).max())
    assert max_diff <= 1e-6, f"fused features: max abs diff {max_diff:.3g} vs the official fusion"


def test_propagation_of_fused_features_matches_official() -> None:
    case = _case()
    ours = propagate(
        _fuse(case),
        torch.from_numpy(case.first_labels),
        topk=case.topk,
        temperature=case.temperature,
        radius=case.radius,
        context=case.context,
    )
    assert_matches_expected(case, ours, "engine on fused features")


@pytest.mark.parametrize("grid", ["one-point", "larger"])
def test_fusion_grid_matches_official(grid: str) -> None:
    case = _case()
    assert case.semantic_features is not None and case.fc_features is not None
    point = GridPoint(case.lam, case.topk, case.radius, case.temperature, case.context)
    if grid == "one-point":
        points = make_grid([case.lam], [case.topk], [case.radius], [case.temperature], [case.context])
    else:
        points = make_grid(
            lambdas=[0.5, case.lam],
            topks=[5, case.topk],
            radii=[9, case.radius],
            temperatures=[case.temperature],
            contexts=[case.context],
        )
    index = points.index(point)
    semantic = F.normalize(torch.from_numpy(case.semantic_features), dim=1)
    fine = F.normalize(torch.from_numpy(case.fc_features), dim=1)
    frames = iter_grid_propagate(
        zip(semantic, fine, strict=True), torch.from_numpy(case.first_labels), points
    )
    ours = torch.stack([maps[index] for maps in frames])
    assert_matches_expected(case, ours, f"{grid} grid of {len(points)} point(s)")
