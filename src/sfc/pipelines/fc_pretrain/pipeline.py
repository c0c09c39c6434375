"""Wiring of ``fc_pretrain``: frame index -> FC checkpoint (catalog ``fc_checkpoint``, fc.pth)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from sfc.pipelines.fc_pretrain.nodes import select_training_frames, train_fc_network


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                select_training_frames,
                ["frame_index", "params:fc_pretrain"],
                "fc_training_frames",
                name="select_training_frames",
            ),
            Node(
                train_fc_network,
                ["fc_training_frames", "params:fc_pretrain"],
                ["fc_checkpoint", "fc_train_summary", "fc_train_curve"],
                name="train_fc",
            ),
        ]
    )
