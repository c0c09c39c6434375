"""Project pipelines, registered explicitly.

Kedro 1.7 loads only the pipelines named by ``--pipelines`` (``find_pipelines`` filters by folder
name), so every pipeline is built from its module's ``create_pipeline()`` here; see
docs/architecture.md.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from sfc.pipelines import (
    cache_features,
    evaluate_davis,
    evaluate_jhmdb,
    evaluate_vip,
    extract_frames,
    fc_pretrain,
    fusion_search,
)


def register_pipelines() -> dict[str, Pipeline]:
    """Map pipeline names to ``Pipeline`` objects."""
    pipelines = {
        "cache_features": cache_features.create_pipeline(),
        "evaluate_davis": evaluate_davis.create_pipeline(),
        "evaluate_jhmdb": evaluate_jhmdb.create_pipeline(),
        "evaluate_vip": evaluate_vip.create_pipeline(),
        "extract_frames": extract_frames.create_pipeline(),
        "fc_pretrain": fc_pretrain.create_pipeline(),
        "fusion_search": fusion_search.create_pipeline(),
    }
    pipelines["__default__"] = pipelines["evaluate_davis"]
    return pipelines
