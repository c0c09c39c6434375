"""Nodes of ``fc_pretrain``: thin wrappers over :mod:`sfc.training.fc_trainer`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sfc.training.fc_trainer import FCTrainConfig, launch_fc_training, train_fc

logger = logging.getLogger(__name__)

# Keys of `fc_pretrain` that are not FCTrainConfig fields.
_PIPELINE_KEYS = ("work_dir", "nproc_per_node")


def select_training_frames(frame_index: pd.DataFrame, fc_pretrain: dict[str, Any]) -> list[str]:
    """Frame files to train on: every indexed frame at least ``min_size`` on its shorter side.

    Raises:
        ValueError: the index is empty, or no frame is large enough.
    """
    if frame_index is None or len(frame_index) == 0:
        raise ValueError(
            "the frame index is empty: run `kedro run --pipelines extract_frames --params frames.root=...` first"
        )
    min_size = int(fc_pretrain.get("min_size", FCTrainConfig.min_size))
    big = frame_index[(frame_index["width"] >= min_size) & (frame_index["height"] >= min_size)]
    dropped = len(frame_index) - len(big)
    if dropped:
        logger.warning("Skipping %d of %d frames smaller than %d px on a side", dropped, len(frame_index), min_size)
    if big.empty:
        raise ValueError(f"no frame in the index is at least {min_size} px on both sides (fc_pretrain.min_size)")
    paths = sorted(big["path"].astype(str).tolist())  # a stable order: it seeds the data order (resume)
    logger.info("Training frames: %d from %d video(s)", len(paths), big["video"].nunique())
    return paths


def _mlflow_log(metrics: dict[str, float], step: int) -> None:
    import mlflow

    if mlflow.active_run():
        mlflow.log_metrics({f"train/{k}": float(v) for k, v in metrics.items()}, step=step)


def train_fc_network(frame_paths: list[str], fc_pretrain: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (or resume) the FC network; return the export checkpoint and a summary.

    ``fc_pretrain.work_dir`` keeps ``last.ckpt`` between runs: rerunning the same command after a
    crash or preemption resumes from it. ``nproc_per_node > 1`` starts that many local processes
    through torch's elastic launcher (DDP; gloo on CPU, nccl on CUDA).
    """
    params = dict(fc_pretrain)
    if not params.get("work_dir"):
        raise ValueError("fc_pretrain.work_dir is not set: the folder for resume checkpoints and metrics")
    work_dir = Path(params.pop("work_dir"))
    nproc = int(params.pop("nproc_per_node", 1))
    config = FCTrainConfig.from_dict(params)
    if nproc > 1:
        result = launch_fc_training(nproc, frame_paths, config, work_dir=work_dir)
        _replay_metrics(work_dir / "metrics.jsonl")  # separate processes: log rank 0's metrics afterwards
    else:
        result = train_fc(frame_paths, config, work_dir=work_dir, log=_mlflow_log)
    if result is None or result.export_path is None:
        raise RuntimeError(f"training in {work_dir} produced no export (fc.pth)")
    export = torch.load(result.export_path, map_location="cpu", weights_only=True)
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
    return export, summary


def _replay_metrics(path: Path) -> None:
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        record = json.loads(line)
        step = int(record.pop("step"))
        _mlflow_log({k: v for k, v in record.items() if isinstance(v, int | float)}, step)
