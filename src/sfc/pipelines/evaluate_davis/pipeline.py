"""Wiring of ``evaluate_davis`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.evaluate_davis.nodes import (
    predict_davis,
    render_correspondence,
    render_davis_videos,
    render_overlays,
    score_davis,
)
from sfc.pipelines.shared import select_davis_sequences


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_davis_sequences, "params:davis", "davis_sequences", name="select_davis_sequences"),
            Node(
                predict_davis,
                [
                    "davis_sequences",
                    "params:davis",
                    "params:backbone",
                    "params:semantic",
                    "params:fusion",
                    "params:propagation",
                    "params:runtime",
                ],
                "davis_predictions",
                name="predict_davis",
            ),
            Node(
                score_davis,
                ["davis_predictions", "davis_sequences", "params:davis", "params:runtime"],
                ["davis_metrics", "davis_mlflow_metrics", "davis_per_sequence"],
                name="score_davis",
            ),
            Node(
                render_overlays,
                ["davis_predictions", "davis_sequences", "params:davis", "params:runtime"],
                "davis_overlays",
                name="render_davis_overlays",
            ),
            Node(
                render_davis_videos,
                ["davis_predictions", "davis_sequences", "params:davis", "params:runtime"],
                "davis_gifs",
                name="render_davis_videos",
            ),
            Node(
                render_correspondence,
                [
                    "davis_sequences",
                    "params:davis",
                    "params:backbone",
                    "params:semantic",
                    "params:fusion",
                    "params:runtime",
                ],
                "davis_correspondence",
                name="render_davis_correspondence",
            ),
        ]
    )
