"""Tests of :mod:`sfc.evaluation.davis.search` (grid scoring) and :func:`sfc.evaluation.davis.metric.score_frame`.

The key property: the score of every grid configuration equals what ``evaluate_davis`` reports for
that configuration alone (fused features -> :func:`sfc.evaluation.davis.evaluate.predict_sequence` -> palette PNGs ->
:func:`sfc.evaluation.davis.evaluate.evaluate_one_sequence`), on the tiny generated DAVIS data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sfc.config import PropagationConfig
from sfc.evaluation.common import Networks
from sfc.evaluation.davis.evaluate import evaluate_one_sequence, predict_sequence
from sfc.evaluation.davis.metric import evaluate_sequence, score_frame
from sfc.evaluation.davis.reader import iter_frames, load_sequence, read_annotations, write_mask
from sfc.evaluation.davis.search import results_table, search_sequence, summarize_grid
from sfc.models.backbones import build_backbone, extract_features
from sfc.propagation.grid import make_grid


def test_score_frame_equals_evaluate_sequence() -> None:
    rng = np.random.default_rng(0)
    gt = np.zeros((5, 40, 50), dtype=np.uint8)
    gt[:, 5:25, 5:30] = 1
    gt[:, 20:35, 25:45] = 2
    gt[2, 0:3, 0:3] = 255
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    pred[rng.random(pred.shape) < 0.1] = 0
    pred[:, 10:12, 10:40] = 2
    ref = evaluate_sequence(gt, pred)
    for t in range(1, 4):
        j, f = score_frame(pred[t], gt[t], 2)
        for obj in (1, 2):
            assert j[obj - 1] == ref[obj].J[t - 1]
            assert f[obj - 1] == ref[obj].F[t - 1]


@pytest.fixture(scope="module")
def two_backbones():
    return build_backbone("resnet50", seed=1), build_backbone("resnet18", seed=2)


def test_grid_scores_equal_evaluate_davis_path(tiny_davis, tmp_path, two_backbones) -> None:
    semantic_model, fine_model = two_backbones
    seq = load_sequence(tiny_davis, "demo-00")
    frames = np.stack(list(iter_frames(seq)))
    sem = extract_features(semantic_model, frames)
    fine = extract_features(fine_model, frames)
    points = make_grid([0.5, 1.75], [3, 8], [2.0, 4.0], [0.1], [3])
    res = search_sequence(seq, sem, fine, points, progress=False)
    assert res.frames == 6 and res.n_objects == int(seq.first_mask.max())
    table = results_table([res], points)
    for p, point in enumerate(points):
        config = PropagationConfig(
            topk=point.topk, temperature=point.temperature, radius=point.radius, context=point.context
        )
        out = tmp_path / f"p{p}"
        networks = Networks(fine_model, semantic_model, point.lam, "error", torch.device("cpu"))
        for pred in predict_sequence(seq, networks, config, scale=1.0, progress=False):
            write_mask(out / pred.sequence / f"{pred.frame}.png", pred.mask)
        ref = evaluate_one_sequence(tiny_davis, out, "demo-00")
        for obj, scores in ref.items():
            np.testing.assert_allclose(res.scores[p][obj].J, scores.J, atol=1e-12)
            np.testing.assert_allclose(res.scores[p][obj].F, scores.F, atol=1e-12)
        row = table[table["config"] == p].iloc[0]
        assert row["J_mean"] == pytest.approx(np.mean([s.J_mean for s in ref.values()]))
    assert set(table.columns) >= {"config", "lambda", "topk", "radius", "sequence", "objects", "JF_mean"}
    assert len(table) == len(points)


def test_summary_weights_sequences_by_objects_and_ranks() -> None:
    table = pd.DataFrame(
        [
            {"config": 0, "lambda": 1.0, "topk": 5, "radius": 12.0, "temperature": 0.1, "context": 20,
             "sequence": "a", "objects": 1, "J_mean": 0.2, "F_mean": 0.4, "JF_mean": 0.3},
            {"config": 0, "lambda": 1.0, "topk": 5, "radius": 12.0, "temperature": 0.1, "context": 20,
             "sequence": "b", "objects": 3, "J_mean": 0.6, "F_mean": 0.8, "JF_mean": 0.7},
            {"config": 1, "lambda": 2.0, "topk": 5, "radius": 12.0, "temperature": 0.1, "context": 20,
             "sequence": "a", "objects": 1, "J_mean": 0.9, "F_mean": 0.9, "JF_mean": 0.9},
            {"config": 1, "lambda": 2.0, "topk": 5, "radius": 12.0, "temperature": 0.1, "context": 20,
             "sequence": "b", "objects": 3, "J_mean": 0.6, "F_mean": 0.6, "JF_mean": 0.6},
        ]
    )
    summary = summarize_grid(table)
    assert list(summary["config"]) == [1, 0]
    assert summary.loc[0, "JF_mean"] == pytest.approx(0.675)  # (0.9 + 3 * 0.6) / 4
    assert summary.loc[1, "JF_mean"] == pytest.approx(0.6)  # per-sequence mean would give 0.5
    assert summary.loc[1, "J_mean"] == pytest.approx((0.2 + 3 * 0.6) / 4)
    assert list(summary["rank"]) == [1, 2] and summary.loc[0, "objects"] == 4
    with pytest.raises(ValueError, match="no results"):
        summarize_grid(table.iloc[0:0])


def test_bad_inputs_name_the_sequence(tiny_davis) -> None:
    seq = load_sequence(tiny_davis, "demo-01")
    sem = torch.nn.functional.normalize(torch.randn(6, 8, 8, 12), dim=1)
    fine = torch.nn.functional.normalize(torch.randn(6, 4, 4, 6), dim=1)
    pts = make_grid([1.0], [3], [2.0], [0.1], [2])
    with pytest.raises(ValueError, match="demo-01.*different spatial sizes.*fusion.align=resize"):
        search_sequence(seq, sem, fine, pts, progress=False)
    res = search_sequence(seq, sem, fine, pts, align="resize", progress=False)  # opt-in resampling works
    assert len(res.scores) == 1
    with pytest.raises(ValueError, match="demo-01.*different lengths"):
        search_sequence(seq, sem[:4], fine, pts, align="resize", progress=False)
    with pytest.raises(ValueError, match="demo-01.*4 feature frames for its 6"):
        search_sequence(seq, sem[:4], fine[:4], pts, align="resize", progress=False)
    with pytest.raises(ValueError, match="empty"):
        search_sequence(seq, sem, fine, [], progress=False)
    assert read_annotations(tiny_davis, "demo-01").shape[0] == 6
