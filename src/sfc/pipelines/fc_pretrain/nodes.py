"""Nodes of ``fc_pretrain``: thin wrappers over :mod:`sfc.training`.

Both nodes take the whole ``fc_pretrain`` parameter group and build a strict
:class:`~sfc.training.FCTrainConfig` from it (unknown, missing or mistyped keys fail before any work).
:func:`train_fc_network` returns the trainer's export; the ``fc_checkpoint`` catalog entry writes it
(``data/06_models/fc/fc.pth``), the one place the final weights are saved.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from sfc.training import METRICS_NAME, FCTrainConfig, launch_fc_training, read_metrics, train_fc

logger = logging.getLogger(__name__)


def select_training_frames(frame_index: pd.DataFrame | None, fc_pretrain: dict[str, Any]) -> list[str]:
    """Frame files to train on: every indexed frame at least ``min_size`` on both sides, sorted.

    Args:
        frame_index: the ``frame_index`` of ``extract_frames`` (columns ``path``, ``video``, ``width``,
            ``height``, ...).
        fc_pretrain: the ``fc_pretrain`` parameter group.

    Returns:
        Frame paths in a stable (sorted) order: the order seeds the data stream, so a resume needs it.

    Raises:
        sfc.config.ConfigError: ``fc_pretrain`` does not fit :class:`~sfc.training.FCTrainConfig`.
        ValueError: the index is empty, or no frame is large enough.
    """
    config = FCTrainConfig.from_dict(fc_pretrain)
    if frame_index is None or len(frame_index) == 0:
        raise ValueError(
            "the frame index is empty: run `kedro run --pipelines extract_frames --params frames.root=...` first"
        )
    min_size = config.min_size
    big = frame_index[(frame_index["width"] >= min_size) & (frame_index["height"] >= min_size)]
    dropped = len(frame_index) - len(big)
    if dropped:
        logger.warning("Skipping %d of %d frames smaller than %d px on a side", dropped, len(frame_index), min_size)
    if big.empty:
        raise ValueError(f"no frame in the index is at least {min_size} px on both sides (fc_pretrain.min_size)")
    paths = sorted(big["path"].astype(str).tolist())
    logger.info("Training frames: %d from %d video(s)", len(paths), big["video"].nunique())
    return paths


def _mlflow_log(metrics: dict[str, float], step: int) -> None:
    import mlflow

    if mlflow.active_run():
        mlflow.log_metrics({f"train/{k}": float(v) for k, v in metrics.items()}, step=step)


def train_fc_network(
    frame_paths: list[str], fc_pretrain: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train (or resume) the FC network; return the export checkpoint, a summary and the training curve.

    ``fc_pretrain.work_dir`` keeps the trainer's resume state (``last.ckpt``) and ``metrics.jsonl``
    between runs: rerunning the same command after a crash or preemption resumes from it.
    ``nproc_per_node > 1`` starts that many local processes through torch's elastic launcher (DDP;
    gloo on CPU, nccl on CUDA) and replays rank 0's ``metrics.jsonl`` to MLflow afterwards.

    Args:
        frame_paths: output of :func:`select_training_frames`.
        fc_pretrain: the ``fc_pretrain`` parameter group.

    Returns:
        (the export checkpoint dict, for the ``fc_checkpoint`` catalog entry; a JSON-able summary; the
        training curve: one row per logged step of the whole run, resumed parts included, columns
        ``step, loss, lr, ema_momentum, images_per_second, epoch, skipped_images``).

    Raises:
        sfc.config.ConfigError: ``fc_pretrain`` does not fit :class:`~sfc.training.FCTrainConfig`.
        sfc.training.ResumeError: ``last.ckpt`` in ``work_dir`` cannot be resumed from.
        RuntimeError: the training returned no export.
    """
    config = FCTrainConfig.from_dict(fc_pretrain)
    if config.nproc_per_node > 1:
        result = launch_fc_training(frame_paths, config)
        _replay_metrics(Path(config.work_dir) / METRICS_NAME)  # separate processes: log rank 0's afterwards
    else:
        result = train_fc(frame_paths, config, log=_mlflow_log)
    if result is None or result.export is None:
        raise RuntimeError(f"training in {config.work_dir} returned no export (rank 0's result is missing)")
    summary = {
        "final_step": result.final_step,
        "start_step": result.start_step,
        "wall_seconds": round(result.wall_seconds, 2),
        "images_per_second": round(result.images_per_second, 3),
        "stopped_early": result.stopped_early,
        "skipped_images": result.n_skipped_images,
        "last_loss": result.last_loss,
        "world_size": result.world_size,
        "device": result.device,
        "frames": len(frame_paths),
    }
    logger.info("FC training: %s", summary)
    return result.export, summary, training_curve(Path(config.work_dir) / METRICS_NAME)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_metrics(path) if line.strip()]


def training_curve(path: Path) -> pd.DataFrame:
    """The trainer's ``metrics.jsonl`` as a table (empty when nothing was logged)."""
    records = _records(path)
    if not records:
        return pd.DataFrame(columns=["step", "loss"])
    return pd.DataFrame(records).sort_values("step").reset_index(drop=True)


def _replay_metrics(path: Path) -> None:
    for record in _records(path):
        step = int(record.pop("step"))
        _mlflow_log({k: v for k, v in record.items() if isinstance(v, int | float)}, step)
