"""Pipeline ``evaluate_vip``: propagate the 20 human-part labels through VIP videos and score mIoU."""

from sfc.pipelines.evaluate_vip.pipeline import create_pipeline

__all__ = ["create_pipeline"]
