"""Nodes of ``evaluate_davis``: thin wrappers over :mod:`sfc.vos`, :mod:`sfc.davis_eval`, :mod:`sfc.viz`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sfc.data.davis import frame_path, load_sequence, read_frame, read_mask, resolve_sequences  # noqa: E402
from sfc.datasets.davis_results import DavisResults  # noqa: E402
from sfc.davis_eval import evaluate_sequences  # noqa: E402
from sfc.metrics.davis import summarize  # noqa: E402
from sfc.models.checkpoints import load_backbone  # noqa: E402
from sfc.viz.overlay import overlay  # noqa: E402
from sfc.vos import (  # noqa: E402
    FramePrediction,
    PropagationConfig,
    check_fusion,
    predict_sequences,
    resolve_device,
)

logger = logging.getLogger(__name__)


def select_sequences(davis: dict[str, Any]) -> list[str]:
    """Resolve and validate the sequences to evaluate, before any long work starts.

    Args:
        davis: ``davis.*`` parameters (root, split, sequences, max_frames, scale).

    Returns:
        Sequence names, in split order.
    """
    root = Path(davis["root"])
    names = resolve_sequences(root, davis["split"], davis.get("sequences"))
    max_frames = davis.get("max_frames")
    if max_frames is not None and max_frames < 3:
        raise ValueError(f"davis.max_frames must be >= 3 (first and last frames are not scored), got {max_frames}")
    if not davis.get("scale", 1.0) > 0:
        raise ValueError(f"davis.scale must be > 0, got {davis.get('scale')}")
    for name in names:  # opens the first frame and its annotation of every sequence: fail early
        load_sequence(root, name, max_frames=max_frames)
    logger.info("DAVIS %s: %d sequence(s) from %s", davis["split"], len(names), root)
    return names


def check_semantic_params(semantic: dict[str, Any]) -> None:
    """Refuse ``semantic.checkpoint`` without ``semantic.arch`` (a checkpoint that would be ignored)."""
    if semantic.get("arch") is None and semantic.get("checkpoint") is not None:
        raise ValueError(
            f"semantic.checkpoint is set ({semantic['checkpoint']}) but semantic.arch is null: name the "
            "semantic backbone's arch, or set semantic.checkpoint to null"
        )


def _describe(params: dict[str, Any], info: Any) -> str:
    where = f", {info.path}, sha256 {info.sha256[:12]}" if info.path else f", seed {params.get('seed', 0)}"
    return f"{params['arch']} ({info.layout}{where})"


def predict_davis(
    sequences: list[str],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    propagation: dict[str, Any],
    runtime: dict[str, Any],
    semantic: dict[str, Any] | None = None,
    fusion: dict[str, Any] | None = None,
) -> Iterator[FramePrediction]:
    """Propagate each sequence's first-frame masks; predictions stream into the results dataset.

    Args:
        sequences: names from :func:`select_sequences`.
        davis: ``davis.*`` parameters.
        backbone: ``backbone.*``: the (fine-grained) network.
        propagation: ``propagation.*``.
        runtime: ``runtime.*``.
        semantic: ``semantic.*``: optional second network (``arch: null`` or a missing dict = none).
        fusion: ``fusion.*``: ``lambda`` (SFC eq. 7, paper DAVIS value 1.75) and ``align``
            (``error`` | ``resize``); read only when ``semantic.arch`` is set.

    Returns:
        A lazy iterator of per-frame predictions (consumed frame by frame when saved).

    Raises:
        ValueError: inconsistent ``semantic`` / ``fusion`` parameters, or backbones whose feature grids
            differ with ``fusion.align: error``, raised before any frame is read.
    """
    semantic = semantic or {}
    fusion = fusion or {}
    check_semantic_params(semantic)
    if semantic.get("arch") is not None and fusion.get("lambda") is None:
        raise ValueError("semantic.arch is set, so fusion.lambda is required (paper, DAVIS: 1.75)")
    model, info = load_backbone(backbone["arch"], backbone.get("checkpoint"), seed=backbone.get("seed", 0))
    device = resolve_device(runtime.get("device", "auto"))
    model.to(device).eval()
    logger.info("Backbone %s on %s", _describe(backbone, info), device)
    semantic_model = None
    fusion_lambda, align = 0.0, "error"
    if semantic.get("arch") is not None:
        fusion_lambda, align = float(fusion["lambda"]), fusion.get("align", "error")
        semantic_model, semantic_info = load_backbone(
            semantic["arch"], semantic.get("checkpoint"), seed=semantic.get("seed", 0)
        )
        try:
            check_fusion(model, semantic_model, fusion_lambda, align)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (parameters: backbone.arch={backbone['arch']}, semantic.arch={semantic['arch']}, "
                f"fusion.lambda={fusion['lambda']}, fusion.align={align}; set fusion.align=resize to resample)"
            ) from exc
        semantic_model.to(device).eval()
        logger.info(
            "Late fusion (SFC eq. 7): semantic %s + lambda %.3g x fine-grained, align %s",
            _describe(semantic, semantic_info), fusion_lambda, align,
        )
    config = PropagationConfig(
        topk=int(propagation["topk"]),
        temperature=float(propagation["temperature"]),
        radius=float(propagation["radius"]),
        context=int(propagation["context"]),
    )
    return predict_sequences(
        davis["root"], sequences, model, config,
        semantic_model=semantic_model, fusion_lambda=fusion_lambda, fusion_align=align,
        max_frames=davis.get("max_frames"), scale=float(davis.get("scale", 1.0)), device=device,
    )


def score_davis(
    results: DavisResults, sequences: list[str], davis: dict[str, Any], runtime: dict[str, Any]
) -> tuple[dict[str, float], dict[str, float], pd.DataFrame]:
    """J&F of the written predictions, exactly as davis2017-evaluation computes them.

    Returns:
        metrics for DVC (``JF_mean``, ``J_mean``, ... in [0, 1]), the same plus ``frames_per_second``
        in kedro-mlflow's metrics-history format, and the per-object table (``Sequence``, ``J-Mean``, ``F-Mean``).
    """
    per_sequence = evaluate_sequences(
        davis["root"], results.path, sequences, workers=runtime.get("eval_workers"), max_frames=davis.get("max_frames")
    )
    metrics, table = summarize(per_sequence)
    metrics = {k: round(float(v), 6) for k, v in metrics.items()}
    logger.info(
        "DAVIS %s: J&F %.4f  J %.4f  F %.4f  (%d objects)",
        davis["split"], metrics["JF_mean"], metrics["J_mean"], metrics["F_mean"], len(table),
    )
    tracked = dict(metrics)
    if results.info.get("frames_per_second"):
        tracked["frames_per_second"] = float(results.info["frames_per_second"])
        logger.info("Propagation throughput: %.2f frames/s", tracked["frames_per_second"])
    # kedro-mlflow's MlflowMetricsHistoryDataset takes {name: {"value": v, "step": s}}.
    return metrics, {k: {"value": v, "step": 0} for k, v in tracked.items()}, table


def render_overlays(results: DavisResults, sequences: list[str], davis: dict[str, Any], runtime: dict[str, Any]):
    """A grid figure: a few sequences (rows) x first / middle / last predicted frame (columns)."""
    root = Path(davis["root"])
    n_rows = min(int(runtime.get("overlays", 4)), len(sequences))
    fig, axes = plt.subplots(max(n_rows, 1), 3, figsize=(12, 2.6 * max(n_rows, 1)), squeeze=False)
    for row, name in enumerate(sequences[:n_rows]):
        frames = sorted(p.stem for p in (results.path / name).glob("*.png"))
        for col, frame in enumerate([frames[0], frames[len(frames) // 2], frames[-1]]):
            image = read_frame(frame_path(root, name, frame))
            ax = axes[row][col]
            ax.imshow(overlay(image, read_mask(results.path / name / f"{frame}.png")))
            ax.set_title(f"{name} / {frame}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
