"""Wiring of ``evaluate_jhmdb`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.evaluate_jhmdb.nodes import (
    predict_jhmdb,
    render_jhmdb_overlays,
    render_jhmdb_per_joint,
    score_jhmdb,
    select_jhmdb_videos,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_jhmdb_videos, "params:jhmdb", "jhmdb_videos", name="select_jhmdb_videos"),
            Node(
                predict_jhmdb,
                [
                    "jhmdb_videos",
                    "params:jhmdb",
                    "params:backbone",
                    "params:semantic",
                    "params:fusion",
                    "params:propagation",
                    "params:runtime",
                ],
                "jhmdb_predictions",
                name="predict_jhmdb",
            ),
            Node(
                score_jhmdb,
                ["jhmdb_predictions", "jhmdb_videos", "params:jhmdb"],
                ["jhmdb_metrics", "jhmdb_mlflow_metrics", "jhmdb_per_video", "jhmdb_per_joint"],
                name="score_jhmdb",
            ),
            Node(
                render_jhmdb_overlays,
                ["jhmdb_predictions", "jhmdb_videos", "params:jhmdb", "params:runtime"],
                "jhmdb_overlays",
                name="render_jhmdb_overlays",
            ),
            Node(render_jhmdb_per_joint, "jhmdb_per_joint", "jhmdb_per_joint_chart", name="render_jhmdb_per_joint"),
        ]
    )
