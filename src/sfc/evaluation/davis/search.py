"""Grid search over late-fusion propagation settings (lambda, top-k, r', temperature, m) on DAVIS.

SFC tunes the fusion weight lambda (eq. 7), the top-k and the radius r' per benchmark by hand
(Table A.2). This module scores a whole grid of such configurations on a validation list of DAVIS
sequences from two per-frame feature streams (usually read from the feature cache), with the shared
computation of :mod:`sfc.propagation.grid`: similarities are computed once per frame, every
configuration only runs its own label recurrence and scoring.

Scores are computed while streaming (:func:`sfc.evaluation.davis.metric.score_frame` on every frame 1..T-2),
so no prediction is written to disk and memory does not grow with the number of configurations
beyond one label ring each. Per-configuration numbers equal those of writing the predictions and
running the DAVIS evaluation on them (tests check it against the ``evaluate_davis`` path).

No Kedro / MLflow here: the ``fusion_search`` pipeline wraps these functions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sfc.config import (
    BackboneConfig,
    DavisConfig,
    FusionConfig,
    FusionSearchConfig,
    PropagationConfig,
    SemanticConfig,
)
from sfc.evaluation.davis.metric import VOID_ID, ObjectScores, score_frame
from sfc.evaluation.davis.reader import DavisSequence, onehot, read_mask
from sfc.fusion import Align, align_grids, check_fusion_args
from sfc.propagation.grid import GridPoint, iter_grid_propagate, make_grid
from sfc.propagation.labels import downsample_labels, upsample_argmax

logger = logging.getLogger(__name__)

POINT_COLUMNS = ["lambda", "topk", "radius", "temperature", "context"]
"""Columns of the result tables that identify a configuration (parameter names of the pipelines)."""


def grid_points(
    search: FusionSearchConfig, fusion: FusionConfig, propagation: PropagationConfig
) -> list[GridPoint]:
    """The configurations to score: the product of the ``fusion_search`` axes.

    An axis set to null takes the single value of the matching parameter (``fusion.lambda``,
    ``propagation.topk`` / ``radius`` / ``temperature`` / ``context``).

    Raises:
        ValueError: an axis holding invalid values (e.g. a top-k of 0).
    """
    fallback = {
        "lambdas": fusion.lam,
        "topks": propagation.topk,
        "radii": propagation.radius,
        "temperatures": propagation.temperature,
        "contexts": propagation.context,
    }
    values = {axis: list(getattr(search, axis) or [fallback[axis]]) for axis in fallback}
    try:
        return make_grid(**values)
    except ValueError as exc:
        raise ValueError(f"invalid fusion_search grid: {exc}") from exc


def validation_sequences(search: FusionSearchConfig, davis: DavisConfig) -> list[str] | None:
    """The validation list: ``fusion_search.sequences``, else ``davis.sequences`` (None = the whole split)."""
    chosen = search.sequences if search.sequences is not None else davis.sequences
    return None if chosen is None else list(chosen)


@dataclass
class SequenceSearch:
    """Scores of every grid configuration on one sequence.

    Attributes:
        sequence: sequence name.
        n_objects: objects scored (ids 1..max of the first annotation, as the official evaluation).
        frames: frames propagated.
        seconds: wall time of propagation + scoring.
        scores: one ``{object_id: ObjectScores}`` per configuration, in grid order.
    """

    sequence: str
    n_objects: int
    frames: int
    seconds: float
    scores: list[dict[int, ObjectScores]] = field(default_factory=list)


def _aligned_pairs(
    semantic: Iterable[torch.Tensor],
    fine: Iterable[torch.Tensor],
    align: Align,
    name: str,
    device: torch.device | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(semantic, fine) per frame on ``device``; semantic resampled onto the fine grid when allowed."""
    for t, (s, f) in enumerate(zip(semantic, fine, strict=True)):
        if device is not None:
            s, f = s.to(device), f.to(device)
        s = align_grids(s, f, align, where=f"sequence {name!r}, frame {t}: ")
        yield s, f


def check_aligned(name: str, semantic: Iterable[torch.Tensor], fine: Iterable[torch.Tensor], align: Align) -> None:
    """Fail now, before any scoring, when the two feature grids of a sequence cannot be fused with ``align``.

    Only the first frame of each stream is read (the other frames of an entry share its size).

    Raises:
        ValueError: different spatial sizes with ``align="error"``, naming the sequence.
    """
    s0, f0 = next(iter(semantic)), next(iter(fine))
    align_grids(s0, f0, align, where=f"sequence {name!r}: ")


def search_sequence(
    seq: DavisSequence,
    semantic: Iterable[torch.Tensor],
    fine: Iterable[torch.Tensor],
    points: Sequence[GridPoint],
    *,
    align: Align = "error",
    device: torch.device | None = None,
    tile: tuple[int, int] | None = None,
    progress: bool = True,
) -> SequenceSearch:
    """Propagate ``seq``'s first-frame masks under every configuration and score each (DAVIS J&F).

    Args:
        seq: a validated sequence (its annotations of frames 1..T-2 are read for scoring).
        semantic: per-frame (Cs, h, w) L2-normalised semantic features, frame 0 first.
        fine: per-frame (Cf, h, w) L2-normalised fine-grained features, same frames; labels live on
            this grid.
        points: the configurations (:func:`sfc.propagation.grid.make_grid`).
        align: ``"error"``: different feature grids are an error; ``"resize"``: resample the
            semantic map onto the fine grid (:func:`sfc.fusion.resize_to`).
        device: where propagation runs (default: the features' device).
        tile: query tile of the engine (speed only).
        progress: show a tqdm bar over frames.

    Returns:
        :class:`SequenceSearch` with per-object scores of every configuration.

    Raises:
        ValueError: feature maps of different spatial sizes (``align="error"``), a number of feature
            frames different from the sequence's, or an invalid configuration.
    """
    if not points:
        raise ValueError("the fusion grid is empty: no configuration to score")
    check_fusion_args(0.0, align)
    T = seq.num_frames
    if T < 3:
        raise ValueError(f"sequence {seq.name!r}: need at least 3 frames (first and last are not scored), got {T}")
    first = seq.first_mask
    n_objects = int(np.max(np.where(first == VOID_ID, 0, first)))
    ids = np.array([0, *seq.object_ids], dtype=np.uint8)
    H, W = seq.size
    # (H, W, K), channel 0 = background: the same labels as evaluate_davis (void counts as background)
    first_onehot = torch.from_numpy(onehot(first, seq.object_ids))
    t0 = time.perf_counter()
    j_hist = np.zeros((len(points), n_objects, T - 2))
    f_hist = np.zeros((len(points), n_objects, T - 2))
    pairs = _aligned_pairs(semantic, fine, align, seq.name, torch.device(device) if device is not None else None)
    try:
        s0, f0 = next(pairs)
    except StopIteration:
        raise ValueError(f"sequence {seq.name!r}: no feature frames") from None
    h, w = f0.shape[-2:]
    labels0 = downsample_labels(first_onehot, (int(h), int(w))).to(f0.device)
    bar = tqdm(total=T, desc=f"{seq.name} x {len(points)} configs", unit="frame", disable=not progress, leave=False)
    n_seen = 0
    try:
        for t, outs in enumerate(iter_grid_propagate(itertools.chain([(s0, f0)], pairs), labels0, points, tile=tile)):
            if t >= T:
                raise ValueError(f"sequence {seq.name!r}: more feature frames than its {T} frames")
            n_seen += 1
            bar.update(1)
            if t == 0 or t == T - 1:
                continue  # the first frame is given and the last is not scored (official protocol)
            gt = read_mask(seq.annotation_path(seq.frame_names[t]))
            if gt.shape != (H, W):
                raise ValueError(
                    f"{seq.annotation_path(seq.frame_names[t])}: expected an annotation of size (H, W) = {(H, W)}, "
                    f"found {gt.shape}"
                )
            for p, soft in enumerate(outs):
                pred = ids[upsample_argmax(soft, (H, W)).cpu().numpy()]
                j_hist[p, :, t - 1], f_hist[p, :, t - 1] = score_frame(pred, gt, n_objects)
    except ValueError as exc:
        if "zip()" in str(exc):  # zip(strict=True) in _aligned_pairs
            raise ValueError(
                f"sequence {seq.name!r}: the semantic and fine feature streams have different lengths ({exc})"
            ) from exc
        raise
    finally:
        bar.close()
    if n_seen != T:
        raise ValueError(f"sequence {seq.name!r}: {n_seen} feature frames for its {T} frames")
    scores = [
        {obj: ObjectScores.from_frames(j_hist[p, obj - 1], f_hist[p, obj - 1]) for obj in range(1, n_objects + 1)}
        for p in range(len(points))
    ]
    seconds = time.perf_counter() - t0
    logger.info(
        "%s: %d configurations x %d frames (features %dx%d) in %.1f s", seq.name, len(points), T, h, w, seconds
    )
    return SequenceSearch(seq.name, n_objects, T, seconds, scores)


def results_table(results: Sequence[SequenceSearch], points: Sequence[GridPoint]) -> pd.DataFrame:
    """One row per (configuration, sequence): the configuration, object count and mean J / F / J&F.

    Columns: ``config`` (index into the grid), ``lambda``, ``topk``, ``radius``, ``temperature``,
    ``context``, ``sequence``, ``objects``, ``J_mean``, ``F_mean``, ``JF_mean`` (means over the
    sequence's objects; a summary weights sequences by ``objects``, like the official global mean).
    """
    rows = []
    for p, point in enumerate(points):
        for res in results:
            objs = list(res.scores[p].values())
            j = float(np.mean([o.J_mean for o in objs])) if objs else float("nan")
            f = float(np.mean([o.F_mean for o in objs])) if objs else float("nan")
            rows.append(
                {"config": p, **point.as_dict(), "sequence": res.sequence, "objects": len(objs),
                 "J_mean": j, "F_mean": f, "JF_mean": (j + f) / 2}
            )
    return pd.DataFrame(rows)


def score_sequence(
    seq: DavisSequence,
    semantic: Iterable[torch.Tensor],
    fine: Iterable[torch.Tensor],
    points: Sequence[GridPoint],
    *,
    align: Align,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """:func:`search_sequence` of one sequence as its :func:`results_table` rows."""
    return results_table([search_sequence(seq, semantic, fine, points, align=align, device=device)], points)


def summarize_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, the global DAVIS means (over all objects of all sequences), best first.

    Args:
        table: :func:`results_table` output (or the same columns read back from Parquet).

    Returns:
        one row per configuration: ``config``, the configuration columns, ``sequences``, ``objects``,
        ``J_mean``, ``F_mean``, ``JF_mean`` and ``rank`` (1 = best J&F; ties keep grid order).
    """
    if table.empty:
        raise ValueError("the fusion search produced no results (empty grid or no sequence)")
    weighted = table.assign(Jw=table["J_mean"] * table["objects"], Fw=table["F_mean"] * table["objects"])
    agg = weighted.groupby("config", sort=True).agg(
        **{c: (c, "first") for c in POINT_COLUMNS},
        sequences=("sequence", "nunique"),
        objects=("objects", "sum"),
        Jw=("Jw", "sum"),
        Fw=("Fw", "sum"),
    )
    agg["J_mean"] = agg["Jw"] / agg["objects"]
    agg["F_mean"] = agg["Fw"] / agg["objects"]
    agg["JF_mean"] = (agg["J_mean"] + agg["F_mean"]) / 2
    agg = agg.drop(columns=["Jw", "Fw"]).reset_index()
    agg = agg.sort_values(["JF_mean", "config"], ascending=[False, True], kind="stable").reset_index(drop=True)
    agg["rank"] = np.arange(1, len(agg) + 1)
    return agg


def annotations_digest(seq: DavisSequence) -> str:
    """SHA-256 of the bytes of every annotation of ``seq`` (what its scores are measured against)."""
    digest = hashlib.sha256()
    for name in seq.frame_names:
        digest.update(name.encode() + b"\0")
        digest.update(seq.annotation_path(name).read_bytes())
    return digest.hexdigest()


def search_signature(points: Sequence[GridPoint], seq: DavisSequence, **inputs: Any) -> str:
    """SHA-256 of everything one sequence's grid scores depend on.

    It covers the grid, the sequence's frames and the content of its annotations, and ``inputs``
    (JSON-serialisable: the two feature keys' ``to_dict()`` and ``align``); it does not depend on
    where the data or the checkout live, so a moved checkout resumes from its stored results.
    """
    payload = {
        "points": [p.as_dict() for p in points],
        "sequence": seq.name,
        "frames": list(seq.frame_names),
        "annotations": annotations_digest(seq),
        "inputs": inputs,
        "version": 2,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def part_id(sequence: str, signature: str) -> str:
    """Name of one sequence's stored results: ``<sequence>-<signature[:16]>``."""
    return f"{sequence}-{signature[:16]}"


def run_name(row: Any) -> str:
    """A configuration as a short label (MLflow child-run name, log lines)."""
    return (
        f"lambda={row['lambda']:g} k={int(row['topk'])} r={row['radius']:g} "
        f"t={row['temperature']:g} m={int(row['context'])}"
    )


def best_configuration(summary: pd.DataFrame) -> dict[str, Any]:
    """The first row of :func:`summarize_grid` as plain JSON values (ints for top-k and m)."""
    best = summary.iloc[0]
    return {
        **{c: int(best[c]) if c in ("topk", "context") else float(best[c]) for c in POINT_COLUMNS},
        **{m: round(float(best[m]), 6) for m in ("JF_mean", "J_mean", "F_mean")},
        "configurations": len(summary),
        "sequences": int(best["sequences"]),
        "objects": int(best["objects"]),
    }


def best_parameters(
    best: dict[str, Any],
    davis: DavisConfig,
    backbone: BackboneConfig,
    semantic: SemanticConfig,
    fusion: FusionConfig,
) -> dict[str, Any]:
    """The best configuration as Kedro parameters (merged over conf/base by ``-e fusion_best``).

    It holds the networks and scale the search used, ``fusion.lambda`` and ``propagation.*``, and
    sets ``jhmdb.settings`` / ``vip.settings`` to ``shared`` so that those benchmarks use the same
    configuration when run with the env (instead of the paper's per-benchmark values).
    """
    return {
        "davis": {"scale": davis.scale},
        "backbone": backbone.to_dict(),
        "semantic": semantic.to_dict(),
        "fusion": {"lambda": float(best["lambda"]), "align": fusion.align},
        "propagation": {
            "topk": int(best["topk"]),
            "temperature": float(best["temperature"]),
            "radius": float(best["radius"]),
            "context": int(best["context"]),
        },
        "jhmdb": {"settings": "shared"},
        "vip": {"settings": "shared"},
    }
