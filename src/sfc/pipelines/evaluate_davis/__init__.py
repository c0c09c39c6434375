"""Pipeline ``evaluate_davis``: propagate first-frame masks through DAVIS and score J&F."""

from sfc.pipelines.evaluate_davis.pipeline import create_pipeline

__all__ = ["create_pipeline"]
