"""Training of the fine-grained correspondence (FC) network: config, data, resume state, DDP, the loop.

Plain PyTorch (no Kedro or MLflow): the ``fc_pretrain`` pipeline wraps :func:`train_fc`.

* :mod:`sfc.training.config`: :class:`FCTrainConfig` (the ``fc_pretrain`` parameter group, strict, no
  defaults) and :class:`TrainResult`;
* :mod:`sfc.training.data`: the seeded frame stream, its crops and the per-step sampler;
* :mod:`sfc.training.checkpoint`: ``last.ckpt`` (resume state) and ``metrics.jsonl`` in ``work_dir``;
* :mod:`sfc.training.distributed`: process groups, collectives and :func:`launch_fc_training`;
* :mod:`sfc.training.loop`: :func:`train_fc`, which returns the final export (it writes no ``fc.pth``);
* :mod:`sfc.training.schedules`: the EMA momentum schedule;
* ``python -m sfc.training``: the ``torchrun`` script form, which writes ``<work-dir>/fc.pth``.
"""

from sfc.training.checkpoint import (
    CHECKPOINT_NAME,
    EXPORT_NAME,
    METRICS_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    ResumeError,
    load_train_state,
    read_metrics,
)
from sfc.training.config import TRAJECTORY_FIELDS, FCTrainConfig, TrainResult
from sfc.training.data import FrameDataset, StepSampler, build_frame_dataset, collate_crops
from sfc.training.distributed import launch_fc_training
from sfc.training.loop import TrainingDivergedError, build_fc_model, build_optimizer, train_fc
from sfc.training.schedules import ema_momentum

__all__ = [
    "CHECKPOINT_NAME",
    "EXPORT_NAME",
    "METRICS_NAME",
    "PREVIOUS_CHECKPOINT_NAME",
    "TRAJECTORY_FIELDS",
    "FCTrainConfig",
    "FrameDataset",
    "ResumeError",
    "StepSampler",
    "TrainResult",
    "TrainingDivergedError",
    "build_fc_model",
    "build_frame_dataset",
    "build_optimizer",
    "collate_crops",
    "ema_momentum",
    "launch_fc_training",
    "load_train_state",
    "read_metrics",
    "train_fc",
]
