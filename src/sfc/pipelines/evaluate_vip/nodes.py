"""Nodes of ``evaluate_vip``: thin wrappers over :mod:`sfc.evaluation.vip` and :mod:`sfc.viz`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sfc.config import (
    BackboneConfig,
    FusionConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
    VipConfig,
)
from sfc.datasets.mask_results import MaskResults
from sfc.evaluation.common import FramePrediction, load_benchmark_networks
from sfc.evaluation.vip.evaluate import (
    evaluate_results,
    iter_result_frames,
    overlay_samples,
    predict_videos,
    select_videos,
)
from sfc.viz.figures import overlay_grid, per_class_bar_chart
from sfc.viz.overlay import PART_PALETTE
from sfc.viz.video import OverlayVideo

logger = logging.getLogger(__name__)


def select_vip_videos(vip: dict[str, Any]) -> list[str]:
    """The videos ``vip.*`` selects, each validated (frames, every annotation) before any long work."""
    return select_videos(VipConfig.from_dict(vip))


def predict_vip(
    videos: list[str],
    vip: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    propagation: dict[str, Any],
    runtime: dict[str, Any],
) -> Iterator[FramePrediction]:
    """Propagate each video's first-frame part labels; predictions stream into ``vip_predictions``.

    The propagation settings are VIP's (``vip.single`` / ``vip.fused``, SFC Tables A.1 / A.2) unless
    ``vip.settings`` is ``shared``.
    """
    cfg = VipConfig.from_dict(vip)
    networks, chosen = load_benchmark_networks(
        cfg,
        BackboneConfig.from_dict(backbone),
        SemanticConfig.from_dict(semantic),
        FusionConfig.from_dict(fusion),
        PropagationConfig.from_dict(propagation),
        RuntimeConfig.from_dict(runtime).device,
    )
    return predict_videos(cfg, videos, networks, chosen)


def score_vip(
    results: MaskResults, videos: list[str], vip: dict[str, Any]
) -> tuple[dict[str, float], dict[str, dict[str, float]], pd.DataFrame]:
    """mIoU of the written predictions, exactly as the official ``eval_vip.py`` computes it.

    Returns:
        metrics for DVC (``mIoU``, ``overall_accuracy``, ``mean_accuracy``, ``fwavacc`` in percent), the
        same plus ``frames_per_second`` for MLflow, and the per-class table.
    """
    cfg = VipConfig.from_dict(vip)
    metrics, per_class, _ = evaluate_results(cfg.root, results.path, videos)
    metrics = {k: round(float(v), 4) for k, v in metrics.items()}
    logger.info("VIP: mIoU %.2f%%, overall accuracy %.2f%% (%d videos)", metrics["mIoU"], metrics["overall_accuracy"],
                len(videos))
    tracked = dict(metrics)
    if results.info.get("frames_per_second"):
        tracked["frames_per_second"] = float(results.info["frames_per_second"])
    return metrics, {k: {"value": v, "step": 0} for k, v in tracked.items()}, per_class


def render_vip_overlays(
    results: MaskResults, videos: list[str], vip: dict[str, Any], runtime: dict[str, Any]
) -> Figure:
    """Predicted part maps over the first / middle / last frame of a few videos."""
    cfg, r = VipConfig.from_dict(vip), RuntimeConfig.from_dict(runtime)
    return overlay_grid(overlay_samples(cfg.root, results.path, videos, r.overlays), palette=PART_PALETTE)


def render_vip_per_class(per_class: pd.DataFrame) -> Figure:
    """Bar chart of the per-class IoU table (one bar per part class, in class-id order, palette colours)."""
    return per_class_bar_chart(per_class)


def render_vip_videos(
    results: MaskResults, videos: list[str], vip: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, OverlayVideo]:
    """Predicted part maps over the frames of the first ``runtime.overlays`` videos, one GIF each.

    Returns:
        video -> lazy blended video (read frame by frame while ``vip_gifs`` writes the GIF).
    """
    cfg, r = VipConfig.from_dict(vip), RuntimeConfig.from_dict(runtime)
    return {
        name: OverlayVideo(functools.partial(iter_result_frames, cfg.root, results.path, name), palette=PART_PALETTE)
        for name in videos[: r.overlays]
    }
