"""Nodes of ``cache_features``: plan the missing feature-cache entries (the dataset writes them).

The node keys every (network, sequence) pair by content and hands lazy feature streams of the missing
entries to ``feature_cache``; networks are loaded only when a missing entry is written, so a rerun
over a filled cache builds no network.
"""

from __future__ import annotations

from typing import Any

from sfc.config import BackboneConfig, CacheFeaturesConfig, DavisConfig, RuntimeConfig, SemanticConfig
from sfc.evaluation.davis.features import plan_feature_entries
from sfc.features.cache import FeatureCache, FeatureEntry


def plan_feature_cache(
    sequences: list[str],
    feature_cache_previous: FeatureCache,
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any],
    runtime: dict[str, Any],
    cache_features: dict[str, Any],
) -> dict[str, FeatureEntry]:
    """The entries ``backbone`` (and ``semantic`` when its arch is set) still need for ``sequences``.

    Returns:
        ``{"<key slug>/<sequence>": FeatureEntry}`` of the missing entries, written by ``feature_cache``.

    Raises:
        FileNotFoundError: a configured checkpoint file does not exist.
    """
    return plan_feature_entries(
        sequences,
        DavisConfig.from_dict(davis),
        {"backbone": BackboneConfig.from_dict(backbone), "semantic": SemanticConfig.from_dict(semantic)},
        feature_cache_previous,
        device=RuntimeConfig.from_dict(runtime).device,
        batch_size=CacheFeaturesConfig.from_dict(cache_features).batch_size,
    )
