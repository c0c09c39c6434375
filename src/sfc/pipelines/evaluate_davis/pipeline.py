"""Wiring of ``evaluate_davis`` (see nodes.py for what each step does)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.evaluate_davis.nodes import predict_davis, render_overlays, score_davis, select_sequences


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_sequences, "params:davis", "davis_sequences", name="select_davis_sequences"),
            Node(
                predict_davis,
                [
                    "davis_sequences",
                    "params:davis",
                    "params:backbone",
                    "params:propagation",
                    "params:runtime",
                    "params:semantic",
                    "params:fusion",
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
        ]
    )
