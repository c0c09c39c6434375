"""Correspondence maps of a DAVIS sequence: what the networks match between two frames (SFC Fig. 5).

:func:`correspondence_sample` picks the frames (the first one as source, the middle one of the
evaluated frames as target), query points inside the first-frame annotation's objects
(:func:`sfc.viz.correspondence.mask_query_points`), computes both frames' features with every
configured network (:func:`sfc.evaluation.common.network_feature_maps`: ``FC`` and, with
``semantic.arch``, ``semantic`` and ``fused``) and their similarity maps; the figure itself is
:func:`sfc.viz.correspondence.correspondence_grid`. No Kedro or MLflow here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sfc.config import DavisConfig
from sfc.evaluation.common import Networks, network_feature_maps
from sfc.evaluation.davis.reader import load_sequence, read_frame
from sfc.viz.correspondence import mask_query_points, similarity_maps

logger = logging.getLogger(__name__)

__all__ = ["N_QUERIES", "CorrespondenceSample", "correspondence_sample"]

N_QUERIES = 3
"""Query points of the report figure (one figure row each)."""


@dataclass(frozen=True)
class CorrespondenceSample:
    """Everything :func:`sfc.viz.correspondence.correspondence_grid` draws for one sequence.

    Attributes:
        sequence: sequence name.
        source_frame: stem of the source frame (the first one).
        target_frame: stem of the target frame.
        source_rgb: (H, W, 3) uint8 source frame.
        target_rgb: (H, W, 3) uint8 target frame.
        queries: (row, col) source pixels inside the first-frame objects.
        maps_per_query: per query, name (``semantic``, ``FC``, ``fused``) -> (h, w) float32 cosine
            similarity over the target frame's feature grid.
    """

    sequence: str
    source_frame: str
    target_frame: str
    source_rgb: np.ndarray
    target_rgb: np.ndarray
    queries: list[tuple[float, float]]
    maps_per_query: list[dict[str, np.ndarray]]

    @property
    def title(self) -> str:
        """``<sequence>: frame <source> -> frame <target>``."""
        return f"{self.sequence}: frame {self.source_frame} -> frame {self.target_frame}"


def correspondence_sample(
    davis: DavisConfig, sequence: str, networks: Networks, *, n_queries: int = N_QUERIES
) -> CorrespondenceSample:
    """Similarity maps of a few first-frame object points over a later frame of ``sequence``.

    Args:
        davis: ``root``, ``max_frames`` (the target is the middle of the evaluated frames) and
            ``scale`` (the networks' input size, as in the evaluation).
        sequence: a sequence of ``davis.root``.
        networks: from :func:`sfc.evaluation.common.load_networks`.
        n_queries: query points (:func:`sfc.viz.correspondence.mask_query_points`; the image centre
            alone when the annotation has no object).

    Returns:
        The frames, queries and per-network maps.

    Raises:
        DavisFormatError: the sequence's frames or first annotation are missing or malformed.
    """
    seq = load_sequence(davis.root, sequence, max_frames=davis.max_frames)
    target = seq.num_frames // 2
    source_rgb, target_rgb = read_frame(seq.frame_paths[0]), read_frame(seq.frame_paths[target])
    feats = network_feature_maps(networks, [source_rgb, target_rgb], scale=davis.scale)
    queries = mask_query_points(seq.first_mask, n_queries)
    maps = [
        similarity_maps({k: v[0] for k, v in feats.items()}, {k: v[1] for k, v in feats.items()}, q, seq.size)
        for q in queries
    ]
    logger.info("Correspondence maps of %s (%s) for %d query point(s), frame %s -> %s", sequence,
                ", ".join(feats), len(queries), seq.frame_names[0], seq.frame_names[target])
    return CorrespondenceSample(
        sequence=sequence,
        source_frame=seq.frame_names[0],
        target_frame=seq.frame_names[target],
        source_rgb=source_rgb,
        target_rgb=target_rgb,
        queries=queries,
        maps_per_query=maps,
    )
