"""Pipeline ``cache_features``: compute each configured backbone's DAVIS features once, keyed by content."""

from sfc.pipelines.cache_features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
