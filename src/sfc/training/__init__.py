"""Training of the fine-grained correspondence (FC) network: schedules and the resumable trainer.

Plain PyTorch (no Kedro or MLflow): the ``fc_pretrain`` pipeline wraps :func:`train_fc`.
"""

from sfc.training.fc_trainer import (
    CHECKPOINT_NAME,
    EXPORT_NAME,
    METRICS_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    FCTrainConfig,
    FrameDataset,
    ResumeError,
    StepSampler,
    TrainingDivergedError,
    TrainResult,
    atomic_save,
    launch_fc_training,
    load_train_state,
    train_fc,
)
from sfc.training.schedules import ema_momentum

__all__ = [
    "CHECKPOINT_NAME",
    "EXPORT_NAME",
    "METRICS_NAME",
    "PREVIOUS_CHECKPOINT_NAME",
    "FCTrainConfig",
    "FrameDataset",
    "ResumeError",
    "StepSampler",
    "TrainResult",
    "TrainingDivergedError",
    "atomic_save",
    "ema_momentum",
    "launch_fc_training",
    "load_train_state",
    "train_fc",
]
