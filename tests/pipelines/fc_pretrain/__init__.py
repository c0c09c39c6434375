"""Tests of the ``fc_pretrain`` pipeline.

:func:`fc_params` is the tiny CPU configuration shared by the node and pipeline tests: the
``fc_pretrain`` group of conf/base (the trainer has no defaults in code) with :data:`TINY_FC` on top:
32 px crops (a 4 x 4 feature map), batches of 2, narrow heads and 3 steps, so one run takes a few
seconds. Each ``last.ckpt`` still holds the full ResNet-18 (online + target + Adam moments, ~180 MB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.data.test_frames import write_jpg
from tests.training.helpers import base_params

#: ``fc_pretrain`` overrides of the tiny runs (everything else: conf/base/parameters_fc_pretrain.yml).
TINY_FC: dict[str, Any] = {
    "steps": 3,
    "batch_size": 2,
    "image_size": 32,
    "projection_hidden_dim": 16,
    "projection_dim": 8,
    "prediction_hidden_dim": 16,
    "min_size": 16,
    "checkpoint_every": 1,
    "log_every": 1,
    "num_workers": 0,
    "device": "cpu",
    "progress": False,
    "nproc_per_node": 1,
}
#: (width, height) of the generated frames: three larger than the 32 px crop, three smaller on one or
#: both sides (>= min_size 16, so they are kept and upsampled by the crop resize).
FRAME_SIZES: tuple[tuple[int, int], ...] = ((64, 48), (64, 48), (48, 64), (24, 20), (40, 24), (20, 20))


def fc_params(work_dir: Path, /, **overrides: Any) -> dict[str, Any]:
    """``params:fc_pretrain`` of a tiny CPU run writing into ``work_dir``: every key, as Kedro passes it."""
    return {**base_params(), **TINY_FC, "work_dir": str(work_dir), **overrides}


def write_frames(root: Path, sizes: tuple[tuple[int, int], ...] = FRAME_SIZES, video: str = "seq") -> list[Path]:
    """Random-content JPEGs ``root/<video>/00000.jpg ...`` of the given (width, height) sizes."""
    return [write_jpg(root / video / f"{i:05d}.jpg", size=size, value=i) for i, size in enumerate(sizes)]
