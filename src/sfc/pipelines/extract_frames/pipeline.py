"""Wiring of ``extract_frames`` (see nodes.py for the incremental-cache design)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.extract_frames.nodes import build_frame_index


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_frame_index,
                ["params:frames", "frame_index_previous", "frame_rejects_previous"],
                ["frame_index", "frame_rejects", "frame_summary"],
                name="build_frame_index",
            ),
        ]
    )
