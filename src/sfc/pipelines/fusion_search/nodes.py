"""Nodes of ``fusion_search``: thin wrappers over :mod:`sfc.fusion_search` and the feature cache.

The search reads both backbones' features from the cache written by ``cache_features`` (it never
runs a network), scores every configuration of the grid on the validation sequences, logs one MLflow
child run per configuration under the pipeline's run, draws the lambda x top-k heatmap and writes the
best configuration as a Kedro parameters file (``conf/fusion_best/parameters.yml``) that
``kedro run --pipelines evaluate_davis -e fusion_best`` uses as is.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sfc.data.davis import load_sequence, resolve_sequences  # noqa: E402
from sfc.features.cache import FeatureCache, backbone_key  # noqa: E402
from sfc.fusion import check_fusion_args  # noqa: E402
from sfc.fusion_search import (  # noqa: E402
    POINT_COLUMNS,
    PartialResults,
    results_table,
    search_sequence,
    search_signature,
    summarize_grid,
)
from sfc.propagation.grid import GridPoint, make_grid  # noqa: E402
from sfc.vos import resolve_device  # noqa: E402

logger = logging.getLogger(__name__)

GRID_AXES = {  # fusion_search.<axis> -> (make_grid argument, fallback parameter when the axis is null)
    "lambdas": ("lambdas", ("fusion", "lambda")),
    "topks": ("topks", ("propagation", "topk")),
    "radii": ("radii", ("propagation", "radius")),
    "temperatures": ("temperatures", ("propagation", "temperature")),
    "contexts": ("contexts", ("propagation", "context")),
}


def build_grid(fusion_search: dict[str, Any], fusion: dict[str, Any], propagation: dict[str, Any]) -> list[GridPoint]:
    """The configurations to score: the product of the ``fusion_search.*`` value lists.

    An axis set to null takes the single value of the matching ``evaluate_davis`` parameter
    (``fusion.lambda``, ``propagation.topk`` / ``radius`` / ``temperature`` / ``context``).

    Raises:
        ValueError: an axis that is an empty list (the grid would be empty) or holds invalid values.
    """
    groups = {"fusion": fusion, "propagation": propagation}
    values: dict[str, list] = {}
    for axis, (arg, (group, key)) in GRID_AXES.items():
        v = fusion_search.get(axis)
        if v is None:
            v = [groups[group][key]]
        elif not isinstance(v, (list, tuple)):
            v = [v]
        if len(v) == 0:
            raise ValueError(
                f"fusion_search.{axis} is an empty list, so the grid is empty: give at least one value, or null "
                f"to use {group}.{key}"
            )
        values[arg] = list(v)
    try:
        return make_grid(**values)
    except ValueError as exc:
        raise ValueError(f"invalid fusion_search grid: {exc}") from exc


def select_validation_sequences(davis: dict[str, Any], fusion_search: dict[str, Any]) -> list[str]:
    """Resolve and validate the validation list before any long work.

    ``fusion_search.sequences`` (a list) wins; null falls back to ``davis.sequences``, then to every
    sequence of ``davis.split``.

    Raises:
        DavisFormatError: unknown sequence names (all listed, with the available ones) or unreadable
            first frames / annotations.
    """
    root = Path(davis["root"])
    wanted = fusion_search.get("sequences")
    if isinstance(wanted, str):  # `--params fusion_search.sequences=bear`: one name, not its letters
        wanted = [wanted]
    if wanted is not None and len(wanted) == 0:
        raise ValueError("fusion_search.sequences is an empty list: name validation sequences, or null for davis.*")
    if wanted is None:
        wanted = davis.get("sequences")
    names = resolve_sequences(root, davis["split"], wanted)
    for name in names:
        load_sequence(root, name, max_frames=davis.get("max_frames"))
    logger.info("Fusion search on %d validation sequence(s): %s", len(names), ", ".join(names))
    return names


def search_fusion_grid(
    sequences: list[str],
    feature_cache: FeatureCache,
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
    propagation: dict[str, Any],
    fusion_search: dict[str, Any],
    runtime: dict[str, Any],
) -> pd.DataFrame:
    """Score every grid configuration on every validation sequence from the cached features.

    Returns:
        One row per (configuration, sequence), see :func:`sfc.fusion_search.results_table`.

    Raises:
        ValueError: no semantic backbone configured, an empty / invalid grid, or feature maps of
            different spatial sizes with ``fusion.align: error``.
        MissingFeaturesError / StaleFeaturesError: features not cached for the configured checkpoints
            (e.g. a checkpoint changed since ``cache_features`` ran), checked for every sequence first.
    """
    if semantic.get("arch") is None:
        raise ValueError(
            "fusion_search fuses two backbones, but semantic.arch is null: set semantic.arch (and "
            "semantic.checkpoint) and run cache_features for it first"
        )
    align = fusion.get("align", "error")
    check_fusion_args(0.0, align)
    points = build_grid(fusion_search, fusion, propagation)
    scale = float(davis.get("scale", 1.0))
    key_fine = backbone_key(backbone, scale, name="backbone")
    key_sem = backbone_key(semantic, scale, name="semantic")
    root, max_frames = Path(davis["root"]), davis.get("max_frames")
    seqs = [load_sequence(root, name, max_frames=max_frames) for name in sequences]
    # Open every cache entry before the long work: a missing or stale one fails now, naming the file.
    opened = [
        (feature_cache.open(key_sem, s.name, s.frame_names), feature_cache.open(key_fine, s.name, s.frame_names))
        for s in seqs
    ]
    device = resolve_device(runtime.get("device", "auto"))
    logger.info(
        "Fusion grid: %d configurations (lambda %s, top-k %s, r' %s, temperature %s, m %s) x %d sequences; "
        "semantic %s, fine %s, on %s",
        len(points), *(sorted({getattr(p, a) for p in points}) for a in ("lam", "topk", "radius", "temperature", "context")),
        len(seqs), key_sem.slug, key_fine.slug, device,
    )
    # Finished sequences are kept under fusion_search.work_dir: a rerun after a crash resumes.
    partial = PartialResults(fusion_search["work_dir"]) if fusion_search.get("work_dir") else None
    tables = []
    for seq, (sem, fine) in zip(seqs, opened, strict=True):
        signature = search_signature(
            points, seq.name, seq.frame_names, semantic=key_sem.to_dict(), fine=key_fine.to_dict(), align=align,
            root=str(root.resolve()),
        )
        rows = partial.load(seq.name, signature) if partial is not None else None
        if rows is not None:
            logger.info("%s: results reused from %s", seq.name, partial.path(seq.name, signature))
        else:
            rows = results_table([search_sequence(seq, sem, fine, points, align=align, device=device)], points)
            if partial is not None:
                partial.save(seq.name, signature, rows)
        tables.append(rows)
    order = {name: i for i, name in enumerate(sequences)}
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(["config", "sequence"], key=lambda c: c.map(order) if c.name == "sequence" else c)
    return table.reset_index(drop=True)


def _run_name(row: Any) -> str:
    return (
        f"lambda={row['lambda']:g} k={int(row['topk'])} r={row['radius']:g} "
        f"t={row['temperature']:g} m={int(row['context'])}"
    )


def summarize_fusion_search(
    results: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, dict[str, float]]]:
    """Rank the configurations and log one MLflow child run per configuration.

    Returns:
        the summary table (best first), the best configuration with its scores (JSON for DVC), and the
        best scores in kedro-mlflow's metrics-history format (logged on the pipeline's run).
    """
    summary = summarize_grid(results)
    if mlflow.active_run() is not None:
        for row in summary.to_dict("records"):
            with mlflow.start_run(nested=True, run_name=_run_name(row)):
                mlflow.log_params({c: row[c] for c in POINT_COLUMNS})
                mlflow.log_metrics(
                    {"JF_mean": row["JF_mean"], "J_mean": row["J_mean"], "F_mean": row["F_mean"], "rank": row["rank"]}
                )
                mlflow.set_tag("sfc.config", int(row["config"]))
        logger.info("Logged %d MLflow child runs (one per configuration)", len(summary))
    best = summary.iloc[0]
    best_dict = {
        **{c: _plain(c, best[c]) for c in POINT_COLUMNS},
        **{m: round(float(best[m]), 6) for m in ("JF_mean", "J_mean", "F_mean")},
        "configurations": len(summary),
        "sequences": int(best["sequences"]),
        "objects": int(best["objects"]),
    }
    logger.info("Best of %d configurations: %s -> J&F %.4f", len(summary), _run_name(best), best["JF_mean"])
    tracked = {
        "best_JF_mean": best_dict["JF_mean"],
        "best_J_mean": best_dict["J_mean"],
        "best_F_mean": best_dict["F_mean"],
        "worst_JF_mean": round(float(summary["JF_mean"].min()), 6),
    }
    return summary, best_dict, {k: {"value": v, "step": 0} for k, v in tracked.items()}


def _plain(column: str, v: Any) -> float | int:
    """A configuration value as a plain int (top-k, context) or float (YAML/JSON-safe).

    The summary may come back from CSV with integer columns as floats; they are ints again here.
    """
    return int(v) if column in ("topk", "context") else float(v)


def plot_fusion_heatmap(summary: pd.DataFrame):
    """J&F over lambda (rows) x top-k (columns) at the best r' (and temperature / m); best cell boxed."""
    best = summary.iloc[0]
    sel = summary[
        (summary["radius"] == best["radius"])
        & (summary["temperature"] == best["temperature"])
        & (summary["context"] == best["context"])
    ]
    grid = sel.pivot_table(index="lambda", columns="topk", values="JF_mean", aggfunc="first").sort_index()
    grid = grid.reindex(sorted(grid.columns), axis=1)
    fig, ax = plt.subplots(figsize=(1.2 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 2))
    im = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(int(k)) for k in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel("top-k")
    ax.set_ylabel("lambda (weight of the fine-grained features)")
    ax.set_title(
        f"DAVIS J&F at r'={best['radius']:g}, temperature={best['temperature']:g}, m={int(best['context'])}",
        fontsize=10,
    )
    values = grid.to_numpy()
    finite = values[np.isfinite(values)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), v in np.ndenumerate(values):
        if math.isfinite(v):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8, color="black" if v > mid else "white")
    bi = list(grid.index).index(best["lambda"])
    bj = list(grid.columns).index(best["topk"])
    ax.add_patch(plt.Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(im, ax=ax, label="J&F mean")
    fig.tight_layout()
    return fig


def best_parameters(
    best: dict[str, Any],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    fusion: dict[str, Any],
) -> dict[str, Any]:
    """The best configuration as a Kedro parameters file for ``evaluate_davis`` (and later benchmarks).

    It holds the backbones and scale the search used, ``fusion.lambda`` and the ``propagation.*``
    values; ``kedro run --pipelines evaluate_davis -e fusion_best`` merges it over conf/base.
    """
    keep = ("arch", "checkpoint", "seed")
    return {
        "davis": {"scale": float(davis.get("scale", 1.0))},
        "backbone": {k: backbone.get(k) for k in keep},
        "semantic": {k: semantic.get(k) for k in keep},
        "fusion": {"lambda": float(best["lambda"]), "align": fusion.get("align", "error")},
        "propagation": {
            "topk": int(best["topk"]),
            "temperature": float(best["temperature"]),
            "radius": float(best["radius"]),
            "context": int(best["context"]),
        },
    }
