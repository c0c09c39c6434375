"""Nodes of ``evaluate_jhmdb``: thin wrappers over :mod:`sfc.evaluation.jhmdb` and :mod:`sfc.viz`."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sfc.config import (
    BackboneConfig,
    FusionConfig,
    JhmdbConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
)
from sfc.evaluation.common import load_benchmark_networks
from sfc.evaluation.jhmdb.evaluate import overlay_samples, predict_videos, score_predictions, select_videos
from sfc.viz.figures import keypoint_grid, per_joint_bar_chart

logger = logging.getLogger(__name__)


def select_jhmdb_videos(jhmdb: dict[str, Any]) -> list[str]:
    """The videos ``jhmdb.*`` selects, each validated (frames, ``pos_img``, frame count) before any work."""
    return select_videos(JhmdbConfig.from_dict(jhmdb))


def predict_jhmdb(
    videos: list[str],
    jhmdb: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    propagation: dict[str, Any],
    runtime: dict[str, Any],
) -> pd.DataFrame:
    """Propagate frame 1's joints through every video; one row per (video, frame, joint).

    The propagation settings are JHMDB's (``jhmdb.single`` / ``jhmdb.fused``, SFC Tables A.1 / A.2)
    unless ``jhmdb.settings`` is ``shared``.
    """
    cfg = JhmdbConfig.from_dict(jhmdb)
    networks, chosen = load_benchmark_networks(
        cfg,
        BackboneConfig.from_dict(backbone),
        SemanticConfig.from_dict(semantic),
        FusionConfig.from_dict(fusion),
        PropagationConfig.from_dict(propagation),
        RuntimeConfig.from_dict(runtime).device,
    )
    t0 = time.perf_counter()
    table = predict_videos(cfg, videos, networks, chosen)
    seconds = time.perf_counter() - t0
    frames = int(table.groupby("video")["frame"].nunique().sum())
    logger.info("JHMDB: %d frames of %d video(s) in %.1f s (%.2f frames/s)", frames, len(videos), seconds,
                frames / seconds if seconds > 0 else float("nan"))
    return table.assign(seconds=seconds)


def score_jhmdb(
    predictions: pd.DataFrame, videos: list[str], jhmdb: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, float]], pd.DataFrame, pd.DataFrame]:
    """PCK of the predictions, exactly as the official ``eval_pck.py`` computes it (percent).

    Returns:
        metrics for DVC (``PCK_0.1`` ... ``PCK_0.5``, ``unscored_joints``), the numeric ones plus
        ``frames_per_second`` for MLflow, the per-video and the per-joint tables.
    """
    metrics, per_video, per_joint = score_predictions(JhmdbConfig.from_dict(jhmdb), videos, predictions)
    metrics = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in metrics.items()}
    logger.info("JHMDB: PCK@0.1 %.2f  PCK@0.2 %.2f (%d videos)", metrics["PCK_0.1"], metrics["PCK_0.2"], len(videos))
    tracked = {k: v for k, v in metrics.items() if isinstance(v, float)}
    seconds = float(predictions["seconds"].iloc[0]) if "seconds" in predictions and len(predictions) else 0.0
    if seconds > 0:
        frames = int(predictions.groupby("video")["frame"].nunique().sum())
        tracked["frames_per_second"] = round(frames / seconds, 4)
    return metrics, {k: {"value": v, "step": 0} for k, v in tracked.items()}, per_video, per_joint


def render_jhmdb_overlays(
    predictions: pd.DataFrame, videos: list[str], jhmdb: dict[str, Any], runtime: dict[str, Any]
) -> Figure:
    """Predicted skeletons and ground-truth joints on the first / middle / last frame of a few videos."""
    cfg, r = JhmdbConfig.from_dict(jhmdb), RuntimeConfig.from_dict(runtime)
    return keypoint_grid(overlay_samples(cfg, videos, predictions, r.overlays))


def render_jhmdb_per_joint(per_joint: pd.DataFrame) -> Figure:
    """Bar chart of the per-joint PCK@0.1 table (one bar per joint, in the table's order)."""
    return per_joint_bar_chart(per_joint)
