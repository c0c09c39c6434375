"""Nodes of ``evaluate_davis``: thin wrappers over :mod:`sfc.evaluation.davis` and :mod:`sfc.viz`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sfc.config import (
    BackboneConfig,
    DavisConfig,
    FusionConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
)
from sfc.datasets.mask_results import MaskResults
from sfc.evaluation.common import load_networks
from sfc.evaluation.davis.correspondence import correspondence_sample
from sfc.evaluation.davis.evaluate import (
    FramePrediction,
    evaluate_sequences,
    iter_result_frames,
    overlay_samples,
    predict_sequences,
)
from sfc.evaluation.davis.metric import summarize
from sfc.viz.correspondence import correspondence_grid
from sfc.viz.figures import overlay_grid
from sfc.viz.video import OverlayVideo

logger = logging.getLogger(__name__)


def predict_davis(
    sequences: list[str],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    propagation: dict[str, Any],
    runtime: dict[str, Any],
) -> Iterator[FramePrediction]:
    """Propagate each sequence's first-frame masks; predictions stream into the results dataset.

    The networks are loaded (and checked to be fusable when ``semantic.arch`` is set) before any
    frame is read.

    Returns:
        A lazy iterator of per-frame predictions (consumed frame by frame when saved).
    """
    networks = load_networks(
        BackboneConfig.from_dict(backbone),
        SemanticConfig.from_dict(semantic),
        FusionConfig.from_dict(fusion),
        RuntimeConfig.from_dict(runtime).device,
    )
    return predict_sequences(
        DavisConfig.from_dict(davis), sequences, networks, PropagationConfig.from_dict(propagation)
    )


def score_davis(
    results: MaskResults, sequences: list[str], davis: dict[str, Any], runtime: dict[str, Any]
) -> tuple[dict[str, float], dict[str, dict[str, float]], pd.DataFrame]:
    """J&F of the written predictions, exactly as davis2017-evaluation computes them.

    Returns:
        metrics for DVC (``JF_mean``, ``J_mean``, ... in [0, 1]), the same plus ``frames_per_second``
        in kedro-mlflow's metrics-history format, and the per-object table (``Sequence``, ``J-Mean``,
        ``F-Mean``).
    """
    d, r = DavisConfig.from_dict(davis), RuntimeConfig.from_dict(runtime)
    per_sequence = evaluate_sequences(d.root, results.path, sequences, workers=r.eval_workers, max_frames=d.max_frames)
    metrics, table = summarize(per_sequence)
    metrics = {k: round(float(v), 6) for k, v in metrics.items()}
    logger.info(
        "DAVIS %s: J&F %.4f  J %.4f  F %.4f  (%d objects)",
        d.split, metrics["JF_mean"], metrics["J_mean"], metrics["F_mean"], len(table),
    )
    tracked = dict(metrics)
    if results.info.get("frames_per_second"):
        tracked["frames_per_second"] = float(results.info["frames_per_second"])
        logger.info("Propagation throughput: %.2f frames/s", tracked["frames_per_second"])
    # kedro-mlflow's MlflowMetricsHistoryDataset takes {name: {"value": v, "step": s}}.
    return metrics, {k: {"value": v, "step": 0} for k, v in tracked.items()}, table


def render_overlays(
    results: MaskResults, sequences: list[str], davis: dict[str, Any], runtime: dict[str, Any]
) -> Figure:
    """A grid figure: a few sequences (rows) x first / middle / last predicted frame (columns)."""
    d, r = DavisConfig.from_dict(davis), RuntimeConfig.from_dict(runtime)
    return overlay_grid(overlay_samples(d.root, results.path, sequences, r.overlays))


def render_davis_videos(
    results: MaskResults, sequences: list[str], davis: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, OverlayVideo]:
    """Predicted masks over the frames of the first ``runtime.overlays`` sequences, one GIF each.

    Returns:
        sequence -> lazy blended video (read frame by frame while ``davis_gifs`` writes the GIF).
    """
    d, r = DavisConfig.from_dict(davis), RuntimeConfig.from_dict(runtime)
    return {
        seq: OverlayVideo(functools.partial(iter_result_frames, d.root, results.path, seq))
        for seq in sequences[: r.overlays]
    }


def render_correspondence(
    sequences: list[str],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    runtime: dict[str, Any],
) -> Figure:
    """Correspondence maps (SFC Fig. 5) of the first sequence: first frame -> middle frame.

    Query points lie inside the first-frame objects; one map per network: ``FC`` and, with
    ``semantic.arch``, ``semantic`` and ``fused`` (lambda ``fusion.lambda``).
    """
    networks = load_networks(
        BackboneConfig.from_dict(backbone),
        SemanticConfig.from_dict(semantic),
        FusionConfig.from_dict(fusion),
        RuntimeConfig.from_dict(runtime).device,
    )
    sample = correspondence_sample(DavisConfig.from_dict(davis), sequences[0], networks)
    return correspondence_grid(sample.source_rgb, sample.target_rgb, sample.maps_per_query, sample.queries,
                               title=sample.title)
