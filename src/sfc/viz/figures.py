"""Report figures (matplotlib, headless): mask overlays of a few videos, the fusion-grid heatmap.

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
from sfc.viz.overlay import overlay  # noqa: E402

__all__ = ["JHMDB_SKELETON", "fusion_heatmap", "keypoint_grid", "overlay_grid"]

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
