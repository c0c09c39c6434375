"""Cached dense features: a content-keyed on-disk store (see :mod:`sfc.features.cache`)."""

from sfc.features.cache import (
    FORMAT_VERSION,
    CachedFeatures,
    FeatureCache,
    FeatureCacheError,
    FeatureEntry,
    FeatureKey,
    MissingFeaturesError,
    PutResult,
    StaleFeaturesError,
    backbone_key,
    feature_layer,
)

__all__ = [
    "FORMAT_VERSION",
    "CachedFeatures",
    "FeatureCache",
    "FeatureCacheError",
    "FeatureEntry",
    "FeatureKey",
    "MissingFeaturesError",
    "PutResult",
    "StaleFeaturesError",
    "backbone_key",
    "feature_layer",
]
