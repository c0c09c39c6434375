"""Wiring of ``cache_features`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.cache_features.nodes import plan_feature_cache
from sfc.pipelines.shared import select_davis_sequences


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_davis_sequences, "params:davis", "davis_sequences", name="select_davis_sequences"),
            Node(
                plan_feature_cache,
                [
                    "davis_sequences",
                    "feature_cache_previous",
                    "params:davis",
                    "params:backbone",
                    "params:semantic",
                    "params:runtime",
                    "params:cache_features",
                ],
                "feature_cache",
                name="plan_feature_cache",
            ),
        ]
    )
