"""Pipeline ``extract_frames``: index frames (image datasets and decoded videos) for FC training."""

from sfc.pipelines.extract_frames.pipeline import create_pipeline

__all__ = ["create_pipeline"]
