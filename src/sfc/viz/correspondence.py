"""Correspondence maps: where a query point of one frame finds its match in another (SFC Fig. 5).

For a query pixel of the source frame, the feature of the grid cell holding it is compared (cosine
similarity) with every location of the target frame's feature map, once per network: the semantic
network, the fine-grained FC network and their late fusion (:func:`sfc.fusion.late_fusion`, SFC
eq. 7; fuse the two maps with it before calling :func:`similarity_maps`). The figure shows the source
frame with the query, then each similarity map upsampled over the target frame with its best match.

* :func:`similarity_maps`: ``{name: (C, h, w)}`` source and target features -> ``{name: (h, w)}`` maps;
* :func:`mask_query_points`: query pixels inside the objects of a label map;
* :func:`correspondence_figure` (one query) and :func:`correspondence_grid` (one row per query).

Plain PyTorch, NumPy and matplotlib; no Kedro or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "correspondence_figure",
    "correspondence_grid",
    "mask_query_points",
    "query_cell",
    "similarity_maps",
    "upsample_map",
]

#: Marker colours of successive query points (one per figure row).
QUERY_COLOURS: tuple[str, ...] = ("#00e5ff", "#ffea00", "#ff3d00", "#76ff03", "#d500f9", "#ffffff")


def query_cell(query_yx: tuple[float, float], image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[int, int]:
    """The feature-grid cell (row, col) holding an image pixel.

    The pixel (y, x) of an (H, W) image falls in cell ``(floor(y * h / H), floor(x * w / W))`` of an
    (h, w) grid, clamped to the grid (a pixel on or past the border maps to the border cell).

    Args:
        query_yx: (row, col) pixel of the image; fractional values are allowed.
        image_hw: (H, W) of the image.
        grid_hw: (h, w) of the feature map.

    Raises:
        ValueError: a non-positive size or a non-finite query.
    """
    (y, x), (big_h, big_w), (h, w) = query_yx, image_hw, grid_hw
    if min(big_h, big_w, h, w) < 1:
        raise ValueError(f"image size {tuple(image_hw)} and grid size {tuple(grid_hw)} must be positive")
    if not (math.isfinite(y) and math.isfinite(x)):
        raise ValueError(f"query point must be finite, got {tuple(query_yx)}")
    row = min(max(math.floor(y * h / big_h), 0), h - 1)
    col = min(max(math.floor(x * w / big_w), 0), w - 1)
    return int(row), int(col)


def similarity_maps(
    source_feats: dict[str, torch.Tensor],
    target_feats: dict[str, torch.Tensor],
    query_yx: tuple[float, float],
    image_hw: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Cosine similarity of a query point's feature with every location of the target frame, per network.

    Args:
        source_feats: name (``"semantic"``, ``"FC"``, ``"fused"``, ...) -> (C, h, w) features of the
            source frame (need not be normalised; every location is L2-normalised here).
        target_feats: the same names -> (C, h, w) features of the target frame, on the same grid and
            with the same channels as the source map of that name (names may have different grids).
        query_yx: (row, col) pixel of the source image; its feature is the one of the grid cell
            holding it (:func:`query_cell`).
        image_hw: (H, W) of the source image.

    Returns:
        name -> (h, w) float32 cosine similarities in [-1, 1] over the target grid, in the order of
        ``source_feats`` (a location whose feature is all zero has similarity 0).

    Raises:
        ValueError: a name missing from ``target_feats``, maps that are not (C, h, w), or source and
            target maps of one name with different shapes.
    """
    missing = [name for name in source_feats if name not in target_feats]
    if missing:
        raise ValueError(f"target features missing for {missing} (source has {list(source_feats)}, target "
                         f"{list(target_feats)})")
    out: dict[str, np.ndarray] = {}
    for name, src in source_feats.items():
        tgt = target_feats[name]
        if src.dim() != 3 or tgt.dim() != 3:
            raise ValueError(f"{name}: expected (C, h, w) feature maps, found source {tuple(src.shape)} and "
                             f"target {tuple(tgt.shape)}")
        if src.shape != tgt.shape:
            raise ValueError(f"{name}: source {tuple(src.shape)} and target {tuple(tgt.shape)} feature maps differ; "
                             "both frames of a name must share channels and grid")
        row, col = query_cell(query_yx, image_hw, (int(src.shape[1]), int(src.shape[2])))
        query = F.normalize(src[:, row, col].detach().float().cpu(), dim=0)
        target = F.normalize(tgt.detach().float().cpu(), dim=0)
        out[name] = torch.einsum("c,chw->hw", query, target).numpy().astype(np.float32)
    return out


def mask_query_points(mask: np.ndarray, n: int = 3) -> list[tuple[float, float]]:
    """Up to ``n`` query pixels inside the objects of a label map, spread over the objects.

    Each object (id > 0) gets one point, the largest objects first when there are more than ``n``;
    remaining points go to the objects with the most pixels per point. An object with ``k`` points is
    cut into ``k`` equal slices along its principal axis, and each point is the object pixel nearest to
    its slice's centroid, so every point lies on the object even when it is not convex.

    Args:
        mask: (H, W) integer ids, 0 = background.
        n: number of points wanted (>= 1).

    Returns:
        (row, col) pixels, ordered by object id, then along each object's axis; ``n`` of them unless
        the objects have fewer pixels. Without any object: the image centre ``((H - 1) / 2, (W - 1) / 2)``
        alone.

    Raises:
        ValueError: ``mask`` is not 2-D or ``n < 1``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a (H, W) label map, found shape {mask.shape}")
    if n < 1:
        raise ValueError(f"expected at least one query point, got n={n}")
    ids, areas = np.unique(mask[mask > 0], return_counts=True)
    if ids.size == 0:
        return [((mask.shape[0] - 1) / 2.0, (mask.shape[1] - 1) / 2.0)]
    largest = np.argsort(-areas, kind="stable")[:n]
    chosen = {int(ids[i]): int(areas[i]) for i in largest}
    points = dict.fromkeys(chosen, 1)
    for _ in range(n - len(chosen)):
        # the object whose points cover the most pixels each, if it still has pixels to spare
        obj = max((o for o in chosen if points[o] < chosen[o]), key=lambda o: chosen[o] / points[o], default=None)
        if obj is None:
            break
        points[obj] += 1
    out: list[tuple[float, float]] = []
    for obj in sorted(chosen):
        coords = np.argwhere(mask == obj).astype(np.float64)  # (N, 2) rows, cols
        k = points[obj]
        if k == 1:
            slices = [coords]
        else:
            centred = coords - coords.mean(axis=0)
            axis = np.linalg.svd(centred, full_matrices=False)[2][0]
            order = np.argsort(centred @ axis, kind="stable")
            slices = [coords[part] for part in np.array_split(order, k)]
        for part in slices:
            centre = part.mean(axis=0)
            nearest = part[np.argmin(((part - centre) ** 2).sum(axis=1))]
            out.append((float(nearest[0]), float(nearest[1])))
    return out


def upsample_map(sim: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized bilinearly (half-pixel centres) to (H, W) float32."""
    t = torch.as_tensor(np.asarray(sim, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(int(image_hw[0]), int(image_hw[1])), mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def correspondence_grid(
    source_rgb: np.ndarray,
    target_rgb: np.ndarray,
    maps_per_query: Sequence[Mapping[str, np.ndarray]],
    queries: Sequence[tuple[float, float]],
    *,
    title: str | None = None,
    alpha: float = 0.55,
    cmap: str = "jet",
) -> Figure:
    """Correspondence maps of several query points: one row per query (SFC Fig. 5 layout).

    Each row: the source frame with the query point (a circle), then one panel per map: the target
    frame with that map upsampled bilinearly to the image and blended as a heatmap (its own colour
    scale, from the map's minimum to its maximum, shown by a colour bar), the best match (argmax of
    the upsampled map) marked with a star and titled with the map's name and peak similarity.

    Args:
        source_rgb: (H, W, 3) uint8 source frame.
        target_rgb: (H', W', 3) uint8 target frame.
        maps_per_query: per query, name -> (h, w) similarity map over the target frame
            (:func:`similarity_maps`); every query has the same names, in panel order.
        queries: (row, col) pixels of the source frame, one per entry of ``maps_per_query``.
        title: figure title (e.g. the sequence and frames).
        alpha: opacity of the heatmaps.
        cmap: matplotlib colour map of the heatmaps.

    Returns:
        The figure: ``len(queries)`` rows x ``1 + len(maps)`` columns.

    Raises:
        ValueError: no query, as many queries as map dicts not given, or queries with different names.
    """
    if not queries:
        raise ValueError("expected at least one query point, found none")
    if len(maps_per_query) != len(queries):
        raise ValueError(f"expected one map dict per query, found {len(maps_per_query)} for {len(queries)} queries")
    names = list(maps_per_query[0])
    for i, maps in enumerate(maps_per_query):
        if list(maps) != names:
            raise ValueError(f"query {i}: expected maps {names} like query 0, found {list(maps)}")
    big_h, big_w = target_rgb.shape[:2]
    n_rows, n_cols = len(queries), 1 + len(names)
    panel_w = 3.4
    panel_h = panel_w * big_h / big_w + 0.55
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_w * n_cols + 0.6 * len(names), panel_h * n_rows + 0.5),
                             squeeze=False)
    for r, (query, maps) in enumerate(zip(queries, maps_per_query, strict=True)):
        colour = QUERY_COLOURS[r % len(QUERY_COLOURS)]
        ax = axes[r][0]
        ax.imshow(source_rgb)
        # a coloured ring over a wider black one: visible on light and dark frames alike
        ax.scatter([query[1]], [query[0]], s=140, facecolors="none", edgecolors="black", linewidths=4.5, zorder=3)
        ax.scatter([query[1]], [query[0]], s=140, facecolors="none", edgecolors=colour, linewidths=2.5, zorder=3)
        ax.scatter([query[1]], [query[0]], s=12, c=colour, zorder=4)
        ax.set_title(f"source, query {r + 1} (y={query[0]:.0f}, x={query[1]:.0f})", fontsize=9)
        for c, name in enumerate(names, start=1):
            ax = axes[r][c]
            up = upsample_map(maps[name], (big_h, big_w))
            lo, hi = float(np.nanmin(up)), float(np.nanmax(up))
            ax.imshow(target_rgb)
            im = ax.imshow(up, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
            by, bx = np.unravel_index(int(np.nanargmax(up)), up.shape)
            # white with a black edge: visible on every colour of the heatmap
            ax.scatter([bx], [by], marker="*", s=280, c="white", edgecolors="black", linewidths=1.4, zorder=4)
            ax.set_title(f"{name}: best match cos {hi:.2f}", fontsize=9)
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            bar.ax.tick_params(labelsize=7)
            if r == 0 and c == n_cols - 1:
                bar.set_label("cosine similarity", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    caption = "circle: query point on the source frame; star: its best match on the target frame"
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize=10)
    fig.tight_layout()
    return fig


def correspondence_figure(
    source_rgb: np.ndarray,
    target_rgb: np.ndarray,
    maps: dict[str, np.ndarray],
    query_yx: tuple[float, float],
    title: str | None = None,
) -> Figure:
    """Correspondence maps of one query point (one row of :func:`correspondence_grid`).

    Args:
        source_rgb: (H, W, 3) uint8 source frame.
        target_rgb: (H', W', 3) uint8 target frame.
        maps: name -> (h, w) similarity map over the target frame (:func:`similarity_maps`).
        query_yx: (row, col) pixel of the source frame.
        title: figure title.
    """
    return correspondence_grid(source_rgb, target_rgb, [maps], [query_yx], title=title)
