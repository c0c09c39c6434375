"""Wiring of ``evaluate_vip`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.evaluate_vip.nodes import (
    predict_vip,
    render_vip_overlays,
    render_vip_per_class,
    render_vip_videos,
    score_vip,
    select_vip_videos,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_vip_videos, "params:vip", "vip_videos", name="select_vip_videos"),
            Node(
                predict_vip,
                [
                    "vip_videos",
                    "params:vip",
                    "params:backbone",
                    "params:semantic",
                    "params:fusion",
                    "params:propagation",
                    "params:runtime",
                ],
                "vip_predictions",
                name="predict_vip",
            ),
            Node(
                score_vip,
                ["vip_predictions", "vip_videos", "params:vip"],
                ["vip_metrics", "vip_mlflow_metrics", "vip_per_class"],
                name="score_vip",
            ),
            Node(
                render_vip_overlays,
                ["vip_predictions", "vip_videos", "params:vip", "params:runtime"],
                "vip_overlays",
                name="render_vip_overlays",
            ),
            Node(render_vip_per_class, "vip_per_class", "vip_per_class_chart", name="render_vip_per_class"),
            Node(
                render_vip_videos,
                ["vip_predictions", "vip_videos", "params:vip", "params:runtime"],
                "vip_gifs",
                name="render_vip_videos",
            ),
        ]
    )
