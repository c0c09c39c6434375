"""Report figures (matplotlib, headless): mask overlays, the fusion-grid heatmap, per-joint / per-class bars.

Functions take arrays and tables and return a ``matplotlib.figure.Figure``; saving (PNG, MLflow
artifact) is the catalog's job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sfc.evaluation.davis.reader import DAVIS_PALETTE  # noqa: E402
from sfc.viz.overlay import PART_PALETTE, overlay  # noqa: E402

__all__ = ["JHMDB_SKELETON", "fusion_heatmap", "keypoint_grid", "overlay_grid", "per_class_bar_chart", "per_joint_bar_chart"]

JHMDB_SKELETON: tuple[tuple[int, int], ...] = (
    (2, 0), (0, 1), (0, 3), (0, 4), (1, 5), (1, 6), (3, 7), (4, 8), (7, 11), (8, 12), (5, 9), (6, 10),
    (9, 13), (10, 14),
)
"""Limbs between JHMDB's 15 joints (face-neck-belly, shoulders-elbows-wrists, hips-knees-ankles)."""


def overlay_grid(
    rows: Sequence[Sequence[tuple[str, np.ndarray, np.ndarray]]], *, palette: np.ndarray = DAVIS_PALETTE
) -> Figure:
    """A grid of frames with their predicted label maps blended over them.

    Args:
        rows: one row per video, each a list of ``(title, (H, W, 3) uint8 frame, (H, W) uint8 ids)``.
        palette: id -> colour (the DAVIS object palette, or :data:`sfc.viz.overlay.PART_PALETTE`).

    Returns:
        The figure (an empty one with a single blank axis when ``rows`` is empty).
    """
    n_rows = max(len(rows), 1)
    n_cols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 2.6 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c, (title, image, mask) in enumerate(row):
            ax = axes[r][c]
            ax.imshow(overlay(image, mask, palette=palette))
            ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def keypoint_grid(rows: Sequence[Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]) -> Figure:
    """Frames with the predicted skeleton (coloured) and the ground-truth joints (white crosses).

    Args:
        rows: one row per video, each a list of ``(title, (H, W, 3) uint8 frame, predicted (2, 15),
            ground truth (2, 15))`` in 0-based image pixels ``[x; y]``; a predicted joint with a negative
            x (lost) is not drawn.
    """
    n_rows = max(len(rows), 1)
    n_cols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.0 * n_rows), squeeze=False)
    colours = plt.get_cmap("Paired")
    for r, row in enumerate(rows):
        for c, (title, image, pred, gt) in enumerate(row):
            ax = axes[r][c]
            ax.imshow(image)
            for i, (a, b) in enumerate(JHMDB_SKELETON):
                if pred[0, a] >= 0 and pred[0, b] >= 0:
                    ax.plot(pred[0, [a, b]], pred[1, [a, b]], color=colours(i % 12), linewidth=2)
            seen = pred[0] >= 0
            ax.scatter(pred[0, seen], pred[1, seen], s=10, c="yellow", zorder=3)
            ax.scatter(gt[0], gt[1], s=18, c="white", marker="x", zorder=4)
            ax.set_xlim(0, image.shape[1])
            ax.set_ylim(image.shape[0], 0)
            ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def fusion_heatmap(summary: pd.DataFrame) -> Figure:
    """J&F over lambda (rows) x top-k (columns) at the best r', temperature and m; best cell boxed.

    Args:
        summary: one row per configuration, best first (columns ``lambda``, ``topk``, ``radius``,
            ``temperature``, ``context``, ``JF_mean``).
    """
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


def _bar_chart(
    labels: Sequence[str],
    values: np.ndarray,
    *,
    title: str,
    xlabel: str,
    mean_label: str,
    missing_label: str,
    colours: Sequence[tuple[float, float, float]] | None = None,
) -> Figure:
    """Horizontal bars in table order (first row on top), each annotated; NaN rows say ``missing_label``.

    Values are percentages (x axis 0-100); a dashed line marks the mean of the finite values.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * max(n, 1) + 1.5))
    y = np.arange(n)
    finite = np.isfinite(values)
    rgb = [tuple(c) for c in colours] if colours is not None else [(0.12, 0.47, 0.71)] * n  # tab:blue
    ax.barh(y, np.where(finite, values, 0.0), color=rgb, edgecolor="black", linewidth=0.6, height=0.7)
    for i, v in enumerate(values):
        if not math.isfinite(v):
            ax.text(1, i, missing_label, va="center", ha="left", fontsize=8, color="dimgray", style="italic")
        elif v > 88:  # no room right of the bar: write inside it, in a colour that contrasts with the bar
            dark = 0.299 * rgb[i][0] + 0.587 * rgb[i][1] + 0.114 * rgb[i][2] < 0.5
            ax.text(v - 1, i, f"{v:.1f}", va="center", ha="right", fontsize=8, color="white" if dark else "black")
        else:  # on a light box, so that the mean line never hides the number
            ax.text(v + 1, i, f"{v:.1f}", va="center", ha="left", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 0.5})
    if finite.any():
        mean = float(values[finite].mean())
        ax.axvline(mean, color="crimson", linestyle="--", linewidth=1.2, label=f"{mean_label} {mean:.1f}", zorder=1)
        # above the axes, right: never over a bar or its number
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, borderaxespad=0.2)
    ax.set_yticks(y, list(labels), fontsize=9)
    ax.set_ylim(n - 0.5, -0.5)  # first table row on top
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: expected columns {list(columns)}, missing {missing} (found {list(table.columns)})")


def per_joint_bar_chart(per_joint: pd.DataFrame, *, metric: str = "PCK_0.1") -> Figure:
    """JHMDB PCK per joint: one bar per row of ``per_joint.csv``, in its (joint) order, values annotated.

    Args:
        per_joint: one row per joint (columns ``joint``, ``scored``, ``PCK_0.1`` ... ``PCK_0.5`` in
            percent, NaN for a joint never scored), as ``evaluate_jhmdb`` writes it.
        metric: the column to draw (``PCK_0.1``: the paper's headline threshold).

    Returns:
        The figure; the dashed line is the mean over scored joints (the reported PCK).

    Raises:
        ValueError: ``joint`` or ``metric`` is not a column.
    """
    _require(per_joint, ["joint", metric], "per-joint table")
    threshold = metric.split("_", 1)[-1]
    return _bar_chart(
        [str(j) for j in per_joint["joint"]],
        per_joint[metric].to_numpy(dtype=np.float64),
        title=f"JHMDB keypoint propagation: PCK@{threshold} per joint",
        xlabel=f"PCK@{threshold} (%)",
        mean_label="mean",
        missing_label="not scored",
    )


def per_class_bar_chart(per_class: pd.DataFrame, *, metric: str = "IoU") -> Figure:
    """VIP IoU per part class: one bar per row of ``per_class.csv``, in its (class id) order, values annotated.

    Bars take the class's colour of the part palette (the overlays' colours) when ``class_id`` is given.

    Args:
        per_class: one row per class (columns ``class_id``, ``name``, ``IoU``, ``accuracy`` in percent,
            NaN where the official value is NaN, ``gt_pixels``), as ``evaluate_vip`` writes it.
        metric: the column to draw (``IoU``, or ``accuracy``).

    Returns:
        The figure; the dashed line is the mean over classes with a value (the official mIoU).

    Raises:
        ValueError: ``name`` or ``metric`` is not a column.
    """
    _require(per_class, ["name", metric], "per-class table")
    colours = None
    if "class_id" in per_class.columns:
        ids = per_class["class_id"].to_numpy(dtype=np.int64).clip(0, len(PART_PALETTE) - 1)
        colours = [tuple(float(c) / 255 for c in PART_PALETTE[i]) for i in ids]
    return _bar_chart(
        [str(n) for n in per_class["name"]],
        per_class[metric].to_numpy(dtype=np.float64),
        title=f"VIP human-part propagation: {metric} per class",
        xlabel=f"{metric} (%)",
        mean_label="mIoU" if metric == "IoU" else "mean",
        missing_label="n/a (class absent)",
        colours=colours,
    )
