"""``predict_davis`` with a second (semantic) backbone late-fused with the first (SFC eq. 7).

Runs on the ``tiny_davis`` fixture (64 x 96 frames: stride-8 grid 8 x 12) with random-init networks;
what is checked is the wiring (fusion on, lambda honoured, feature grids, early errors), not accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sfc.evaluation.davis.evaluate import FramePrediction
from sfc.evaluation.davis.reader import list_frames, load_sequence, onehot
from sfc.pipelines.evaluate_davis.nodes import predict_davis
from sfc.pipelines.shared import select_davis_sequences as select_sequences
from sfc.propagation.labels import downsample_labels, upsample_argmax
from tests.pipelines.evaluate_davis import (
    BACKBONE,
    FUSION,
    N_FRAMES,
    PROPAGATION,
    RUNTIME,
    SEMANTIC,
    SEQUENCES,
    davis_params,
)

SEMANTIC_R18: dict[str, Any] = {"arch": "resnet18", "checkpoint": None, "seed": 1}


def _predict(
    root: Path, semantic: dict[str, Any] | None, fusion: dict[str, Any] | None, backbone: dict[str, Any] = BACKBONE
) -> Iterator[FramePrediction]:
    """``predict_davis``; a None ``semantic`` / ``fusion`` takes the FC-only defaults of the tests."""
    davis = davis_params(root)
    return predict_davis(
        select_sequences(davis), davis, backbone, semantic or SEMANTIC, fusion or FUSION, PROPAGATION, RUNTIME
    )


def _masks(preds: Iterator[FramePrediction]) -> list[np.ndarray]:
    return [p.mask for p in preds]


@pytest.fixture(scope="module")
def single(tiny_davis: Path) -> list[np.ndarray]:
    """The FC-only (backbone seed 0) predictions."""
    return _masks(_predict(tiny_davis, None, None))


def test_no_semantic_arch_is_the_single_backbone_run(tiny_davis: Path, single: list[np.ndarray]) -> None:
    explicit = _masks(_predict(tiny_davis, {"arch": None, "checkpoint": None, "seed": 5}, FUSION))
    assert len(explicit) == len(single) == len(SEQUENCES) * N_FRAMES
    for a, b in zip(explicit, single, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fusion_runs_and_changes_the_predictions(tiny_davis: Path, single: list[np.ndarray]) -> None:
    preds = list(_predict(tiny_davis, SEMANTIC_R18, {"lambda": 1.75, "align": "error"}))
    expected = [(seq, frame) for seq in SEQUENCES for frame in list_frames(tiny_davis, seq)]
    assert [(p.sequence, p.frame) for p in preds] == expected
    for pred in preds:
        valid = {0, *load_sequence(tiny_davis, pred.sequence).object_ids}
        assert pred.mask.dtype == np.uint8 and set(np.unique(pred.mask).tolist()) <= valid
    changed = sum(not np.array_equal(p.mask, s) for p, s in zip(preds, single, strict=True))
    assert changed > 0, "fusing a second network changed no prediction"


def test_lambda_zero_is_the_semantic_network_alone(tiny_davis: Path) -> None:
    fused = _masks(_predict(tiny_davis, SEMANTIC_R18, {"lambda": 0.0, "align": "error"}))
    alone = _masks(_predict(tiny_davis, None, None, backbone=SEMANTIC_R18))
    for a, b in zip(fused, alone, strict=True):
        np.testing.assert_array_equal(a, b)


def test_vit_s16_with_a_resnet_needs_align_resize(tiny_davis: Path) -> None:
    vit16 = {"arch": "vit_small_patch16", "checkpoint": None, "seed": 0}
    with pytest.raises(ValueError) as err:  # raised by the node itself, before any frame is read
        _predict(tiny_davis, vit16, {"lambda": 1.75, "align": "error"})
    msg = str(err.value)
    assert "vit_small_patch16 (stride 16)" in msg and "resnet18 (stride 8)" in msg
    assert "fusion.align=resize" in msg

    preds = list(_predict(tiny_davis, vit16, {"lambda": 1.75, "align": "resize"}))
    assert len(preds) == len(SEQUENCES) * N_FRAMES
    # Labels live on the fine (stride-8) grid: frame 0 is the annotation resampled through 8 x 12.
    seq = load_sequence(tiny_davis, SEQUENCES[0])
    soft = downsample_labels(torch.from_numpy(onehot(seq.first_mask, seq.object_ids)), (8, 12))
    ids = np.array([0, *seq.object_ids], np.uint8)
    np.testing.assert_array_equal(preds[0].mask, ids[upsample_argmax(soft, seq.size).numpy()])


def test_vit_s8_with_a_resnet_fuses_without_resizing(tiny_davis: Path) -> None:
    vit8 = {"arch": "vit_small_patch8", "checkpoint": None, "seed": 0}
    preds = list(_predict(tiny_davis, vit8, {"lambda": 1.75, "align": "error"}))
    assert len(preds) == len(SEQUENCES) * N_FRAMES


@pytest.mark.parametrize(
    ("semantic", "fusion", "match"),
    [
        (SEMANTIC_R18, {"align": "error"}, "fusion.lambda: missing"),
        (SEMANTIC_R18, {"lambda": -1.0, "align": "error"}, "fusion.lambda: must be >= 0"),
        (SEMANTIC_R18, {"lambda": 1.0, "align": "crop"}, "fusion.align: expected one of 'error' | 'resize'"),
        ({"arch": None, "checkpoint": "weights.pth", "seed": 0}, FUSION, "semantic.arch is null"),
        ({"arch": "resnet101", "checkpoint": None, "seed": 0}, FUSION, "semantic.arch: unknown 'resnet101'"),
    ],
)
def test_bad_fusion_parameters_fail_before_prediction(
    tiny_davis: Path, semantic: dict[str, Any], fusion: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _predict(tiny_davis, semantic, fusion)
