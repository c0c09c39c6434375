"""Pipeline ``fc_pretrain``: train the FC network (SFC's fine-grained correspondence ResNet-18)."""

from sfc.pipelines.fc_pretrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
