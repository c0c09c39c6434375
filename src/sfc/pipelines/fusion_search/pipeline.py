"""Wiring of ``fusion_search`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.fusion_search.nodes import (
    best_parameters,
    best_run_config,
    collect_fusion_search,
    plot_fusion_heatmap,
    search_fusion_grid,
    select_validation_sequences,
    summarize_fusion_search,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                select_validation_sequences,
                ["params:davis", "params:fusion_search"],
                "fusion_validation_sequences",
                name="select_validation_sequences",
            ),
            Node(
                search_fusion_grid,
                [
                    "fusion_validation_sequences",
                    "feature_cache",
                    "fusion_search_parts_previous",
                    "params:davis",
                    "params:backbone",
                    "params:semantic",
                    "params:fusion",
                    "params:propagation",
                    "params:fusion_search",
                    "params:runtime",
                ],
                ["fusion_search_parts", "fusion_search_plan"],
                name="search_fusion_grid",
            ),
            Node(
                collect_fusion_search,
                ["fusion_search_parts", "fusion_search_plan"],
                "fusion_search_results",
                name="collect_fusion_search",
            ),
            Node(
                summarize_fusion_search,
                "fusion_search_results",
                ["fusion_search_summary", "fusion_search_best", "fusion_search_mlflow_metrics"],
                name="summarize_fusion_search",
            ),
            Node(plot_fusion_heatmap, "fusion_search_summary", "fusion_search_heatmap", name="plot_fusion_heatmap"),
            Node(
                best_parameters,
                ["fusion_search_best", "params:davis", "params:backbone", "params:semantic", "params:fusion"],
                "fusion_best_parameters",
                name="write_best_parameters",
            ),
            Node(best_run_config, "fusion_best_parameters", "fusion_best_run", name="write_best_run_config"),
        ]
    )
