"""``fusion_search``: grid search over late-fusion propagation settings from cached features."""

from sfc.pipelines.fusion_search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
