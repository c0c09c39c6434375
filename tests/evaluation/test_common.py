"""Tests of :mod:`sfc.evaluation.common`: per-benchmark settings, fixed input sizes, grid-resolution labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfc.config import (
    BackboneConfig,
    FusionConfig,
    JhmdbConfig,
    PropagationConfig,
    SemanticConfig,
    VipConfig,
)
from sfc.evaluation.common import (
    iter_frame_features,
    load_benchmark_networks,
    load_networks,
    propagate_labels,
)

BACKBONE = BackboneConfig(arch="resnet18", checkpoint=None, seed=0)
NO_SEMANTIC = SemanticConfig(arch=None, checkpoint=None, seed=0)
SEMANTIC = SemanticConfig(arch="resnet18", checkpoint=None, seed=1)
FUSION = FusionConfig(lam=1.75, align="error")
SHARED = PropagationConfig(topk=15, temperature=0.1, radius=15.0, context=20)
JHMDB = {
    "root": "r", "split": None, "image_size": 320, "settings": "paper",
    "single": {"topk": 10, "temperature": 0.07, "radius": 3, "context": 8},
    "fused": {"lambda": 1.0, "topk": 20, "temperature": 0.07, "radius": 5, "context": 8},
}


@pytest.mark.parametrize(
    ("settings", "semantic", "expected", "lam"),
    [
        ("paper", NO_SEMANTIC, PropagationConfig(10, 0.07, 3.0, 8), None),  # SFC Table A.1
        ("paper", SEMANTIC, PropagationConfig(20, 0.07, 5.0, 8), 1.0),  # Table A.2, its own lambda
        ("shared", SEMANTIC, SHARED, 1.75),  # propagation.* and fusion.lambda (e.g. -e fusion_best)
    ],
)
def test_benchmark_settings(settings: str, semantic: SemanticConfig, expected: PropagationConfig, lam) -> None:
    cfg = JhmdbConfig.from_dict({**JHMDB, "settings": settings})
    networks, chosen = load_benchmark_networks(cfg, BACKBONE, semantic, FUSION, SHARED, "cpu")
    assert chosen == expected
    assert networks.fused == semantic.enabled
    if lam is not None:
        assert networks.lam == lam


def test_vip_config_round_trip() -> None:
    values = {**JHMDB, "image_size": 560, "max_frames": None}
    assert VipConfig.from_dict(values).to_dict() == values


def test_fixed_input_size_gives_the_protocol_grid() -> None:
    networks = load_networks(BACKBONE, NO_SEMANTIC, FUSION, "cpu")
    frames = [np.zeros((240, 320, 3), np.uint8), np.full((240, 320, 3), 90, np.uint8)]
    feats = list(iter_frame_features(networks, frames, size=(320, 320)))
    assert [tuple(f.shape[-2:]) for f in feats] == [(40, 40), (40, 40)]  # 320 x 320 -> 40 x 40 at stride 8
    assert tuple(next(iter_frame_features(networks, frames[:1], scale=0.5)).shape[-2:]) == (15, 20)


def test_labels_on_the_grid_are_used_as_given() -> None:
    feats = [torch.nn.functional.normalize(torch.randn(8, 5, 6), dim=0) for _ in range(3)]
    labels = torch.zeros(5, 6, 3)
    labels[..., 0] = 1.0
    labels[2, 3] = torch.tensor([0.0, 0.7, 0.3])  # not one-hot: a resize would change it
    out = list(propagate_labels(feats, labels, PropagationConfig(topk=3, temperature=0.05, radius=3, context=2)))
    assert torch.equal(out[0], labels) and len(out) == 3
