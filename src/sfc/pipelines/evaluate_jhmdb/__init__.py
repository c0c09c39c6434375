"""Pipeline ``evaluate_jhmdb``: propagate frame 1's 15 joints through JHMDB videos and score PCK."""

from sfc.pipelines.evaluate_jhmdb.pipeline import create_pipeline

__all__ = ["create_pipeline"]
