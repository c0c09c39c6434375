"""Nodes of ``fusion_search``: thin wrappers over :mod:`sfc.evaluation.davis.search`.

The search reads both networks' features from the cache written by ``cache_features`` (it never runs
a network) and scores every configuration of the grid on the validation sequences. Each finished
sequence's rows are a part of ``fusion_search_parts`` (written as soon as the sequence is done), so
an interrupted search resumes from the parts already stored. Then the table is ranked, one MLflow
child run is logged per configuration, the lambda x top-k heatmap drawn, and the best configuration
written as a Kedro env (``conf/fusion_best/parameters.yml``) that ``kedro run --pipelines
evaluate_davis -e fusion_best`` uses as is.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure

from sfc.config import (
    BackboneConfig,
    DavisConfig,
    FusionConfig,
    FusionSearchConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
)
from sfc.device import resolve_device
from sfc.evaluation.davis import search
from sfc.evaluation.davis.evaluate import select_sequences
from sfc.evaluation.davis.reader import load_sequence
from sfc.features.cache import FeatureCache, backbone_key
from sfc.viz.figures import fusion_heatmap

logger = logging.getLogger(__name__)


def select_validation_sequences(davis: dict[str, Any], fusion_search: dict[str, Any]) -> list[str]:
    """The validation list (``fusion_search.sequences``, else ``davis.sequences``, else the split), checked."""
    d = DavisConfig.from_dict(davis)
    chosen = search.validation_sequences(FusionSearchConfig.from_dict(fusion_search), d)
    names = select_sequences(dataclasses.replace(d, sequences=None if chosen is None else tuple(chosen)))
    logger.info("Fusion search on %d validation sequence(s): %s", len(names), ", ".join(names))
    return names


def search_fusion_grid(
    sequences: list[str],
    feature_cache: FeatureCache,
    stored_parts: dict[str, pd.DataFrame],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    propagation: dict[str, Any],
    fusion_search: dict[str, Any],
    runtime: dict[str, Any],
) -> tuple[dict[str, Callable[[], pd.DataFrame]], list[str]]:
    """Plan the grid scoring: one lazily computed part per validation sequence not already stored.

    Every cache entry is opened (and the two grids compared) first, so missing or stale features and
    feature maps that cannot be fused fail before the long work.

    Returns:
        ``{part_id: callable}`` for the sequences still to score (written one by one to
        ``fusion_search_parts``), and the ordered part ids of every sequence (the plan).

    Raises:
        ValueError: no semantic network configured, an invalid grid, or feature maps of different
            spatial sizes with ``fusion.align: error``.
        MissingFeaturesError / StaleFeaturesError: features not cached for the configured checkpoints.
    """
    d, b, s = DavisConfig.from_dict(davis), BackboneConfig.from_dict(backbone), SemanticConfig.from_dict(semantic)
    f = FusionConfig.from_dict(fusion)
    if not s.enabled:
        raise ValueError(
            "fusion_search fuses two networks, but semantic.arch is null: set semantic.arch (and "
            "semantic.checkpoint) and run `kedro run --pipelines cache_features` for it first"
        )
    points = search.grid_points(FusionSearchConfig.from_dict(fusion_search), f, PropagationConfig.from_dict(propagation))
    key_fine, key_sem = backbone_key(b, d.scale, name="backbone"), backbone_key(s, d.scale, name="semantic")
    seqs = [load_sequence(d.root, name, max_frames=d.max_frames) for name in sequences]
    opened = [(feature_cache.open(key_sem, q.name, q.frame_names), feature_cache.open(key_fine, q.name, q.frame_names))
              for q in seqs]
    for q, (sem, fine) in zip(seqs, opened, strict=True):
        search.check_aligned(q.name, sem, fine, f.align)
    device = resolve_device(RuntimeConfig.from_dict(runtime).device)
    logger.info(
        "Fusion grid: %d configurations (lambda %s, top-k %s, r' %s, temperature %s, m %s) x %d sequences; "
        "semantic %s, fine %s, on %s",
        len(points), *(sorted({getattr(p, a) for p in points}) for a in ("lam", "topk", "radius", "temperature", "context")),
        len(seqs), key_sem.slug, key_fine.slug, device,
    )
    parts: dict[str, Callable[[], pd.DataFrame]] = {}
    plan: list[str] = []
    for seq, (sem, fine) in zip(seqs, opened, strict=True):
        signature = search.search_signature(
            points, seq, semantic=key_sem.to_dict(), fine=key_fine.to_dict(), align=f.align
        )
        pid = search.part_id(seq.name, signature)
        plan.append(pid)
        if pid in stored_parts:
            logger.info("%s: grid scores reused (stored part %s)", seq.name, pid)
            continue
        parts[pid] = functools.partial(search.score_sequence, seq, sem, fine, points, align=f.align, device=device)
    logger.info("Fusion search: %d of %d sequence(s) to score", len(parts), len(plan))
    return parts, plan


def collect_fusion_search(parts: dict[str, pd.DataFrame], plan: list[str]) -> pd.DataFrame:
    """The rows of every planned part, sorted by configuration then validation order.

    Raises:
        ValueError: a planned part is not in the store (it was not written).
    """
    missing = [p for p in plan if p not in parts]
    if missing:
        raise ValueError(f"fusion search parts missing from the store: {missing}")
    order = {pid: i for i, pid in enumerate(plan)}
    table = pd.concat([parts[p].assign(_order=order[p]) for p in plan], ignore_index=True)
    return table.sort_values(["config", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


def summarize_fusion_search(
    results: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, dict[str, float]]]:
    """Rank the configurations and log one MLflow child run per configuration.

    Returns:
        the summary table (best first), the best configuration with its scores (JSON for DVC), and the
        best scores in kedro-mlflow's metrics-history format (logged on the pipeline's run).
    """
    summary = search.summarize_grid(results)
    if mlflow.active_run() is not None:
        for row in summary.to_dict("records"):
            with mlflow.start_run(nested=True, run_name=search.run_name(row)):
                mlflow.log_params({c: row[c] for c in search.POINT_COLUMNS})
                mlflow.log_metrics(
                    {"JF_mean": row["JF_mean"], "J_mean": row["J_mean"], "F_mean": row["F_mean"], "rank": row["rank"]}
                )
                mlflow.set_tag("sfc.config", int(row["config"]))
        logger.info("Logged %d MLflow child runs (one per configuration)", len(summary))
    best = search.best_configuration(summary)
    logger.info("Best of %d configurations: %s -> J&F %.4f", len(summary), search.run_name(best), best["JF_mean"])
    tracked = {
        "best_JF_mean": best["JF_mean"],
        "best_J_mean": best["J_mean"],
        "best_F_mean": best["F_mean"],
        "worst_JF_mean": round(float(summary["JF_mean"].min()), 6),
    }
    return summary, best, {k: {"value": v, "step": 0} for k, v in tracked.items()}


def plot_fusion_heatmap(summary: pd.DataFrame) -> Figure:
    """J&F over lambda x top-k at the best r' (and temperature / m); best cell boxed."""
    return fusion_heatmap(summary)


def best_parameters(
    best: dict[str, Any],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
) -> dict[str, Any]:
    """The best configuration as a Kedro env (``-e fusion_best``) for ``evaluate_davis``."""
    return search.best_parameters(
        best,
        DavisConfig.from_dict(davis),
        BackboneConfig.from_dict(backbone),
        SemanticConfig.from_dict(semantic),
        FusionConfig.from_dict(fusion),
    )


def best_run_config(parameters: dict[str, Any]) -> dict[str, Any]:
    """The best configuration as a Kedro run-config file: ``kedro run --config best_run.yml`` applies it
    in any env (dvc.yaml's evaluation stages use it with the profile's env)."""
    return {"run": {"params": parameters}}
