"""Resume state of FC training: ``last.ckpt``, RNG states, the frame-list fingerprint and ``metrics.jsonl``.

Files in ``work_dir`` (all written by rank 0 through :mod:`sfc.atomic`):

* ``last.ckpt``: the full training state (model, optimizer, step, RNG states, data-order state, config),
  rewritten every ``checkpoint_every`` steps and at the end with ``atomic_path(durable=True,
  keep_previous=True)``; the replaced one is kept as ``last.prev.ckpt``, so a complete state exists at
  every instant, even after a power loss.
* ``metrics.jsonl``: one JSON record per logged step; a resumed run first drops the records logged after
  its checkpoint (by a run killed between a log and the next checkpoint).

The final export (``fc.pth``) is not written here: :func:`~sfc.training.train_fc` returns it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sfc.atomic import atomic_path, previous_path, write_text
from sfc.models.checkpoints import NATIVE_FORMAT, CheckpointError
from sfc.training.config import TRAJECTORY_FIELDS, FCTrainConfig

__all__ = [
    "CHECKPOINT_NAME",
    "EXPORT_KIND",
    "EXPORT_NAME",
    "METRICS_NAME",
    "PREVIOUS_CHECKPOINT_NAME",
    "TRAIN_STATE_KIND",
    "ResumeError",
    "load_train_state",
    "save_train_state",
]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.ckpt"
"""Training state in ``work_dir``, rewritten every ``checkpoint_every`` steps."""
PREVIOUS_CHECKPOINT_NAME = previous_path(CHECKPOINT_NAME).name
"""The training state before the latest save (``last.prev.ckpt``)."""
METRICS_NAME = "metrics.jsonl"
"""Logged metrics in ``work_dir``, one JSON object per line."""
EXPORT_NAME = "fc.pth"
"""File name of the final export where a caller writes it (``python -m sfc.training``: in ``--work-dir``;
the Kedro pipeline: the ``fc_checkpoint`` catalog entry). :func:`~sfc.training.train_fc` writes none."""
TRAIN_STATE_KIND = "fc_train_state"
"""``kind`` of a training-state checkpoint."""
EXPORT_KIND = "fc_export"
"""``kind`` of the final export."""


class ResumeError(CheckpointError):
    """``last.ckpt`` cannot be resumed from (unreadable, not a training state, or incompatible)."""


def resume_hint(path: Path) -> str:
    """How to recover from an unusable checkpoint ``path`` (delete it, or fall back to the previous one)."""
    prev = previous_path(path)
    hint = f"Delete {path} to restart training from scratch"
    if prev.exists():
        hint += f", or move the previous checkpoint {prev} over it to resume from there"
    return hint + "."


def save_train_state(state: Mapping[str, Any], path: Path) -> Path:
    """Write a training state atomically and durably, keeping the replaced one as ``last.prev.ckpt``.

    Args:
        state: the dict :func:`load_train_state` reads back.
        path: ``work_dir/last.ckpt``.

    Returns:
        ``path``.
    """
    with atomic_path(path, durable=True, keep_previous=True) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Read and validate a training-state checkpoint written by :func:`~sfc.training.train_fc`.

    Args:
        path: a ``last.ckpt`` (or ``last.prev.ckpt``).

    Returns:
        ``{'format', 'arch', 'step', 'kind', 'config', 'model', 'optimizer', 'rng', 'world_size',
        'data'}`` with CPU tensors.

    Raises:
        ResumeError: the file is unreadable (e.g. truncated) or not a training state; the message
            names the file and says how to recover.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, foreign pickle ...
        raise ResumeError(
            f"cannot resume from {path}: not a readable checkpoint ({type(exc).__name__}: {exc}). "
            + resume_hint(path)
        ) from exc
    required = ("model", "optimizer", "step", "rng", "data", "config")
    if not isinstance(obj, dict) or obj.get("kind") != TRAIN_STATE_KIND or obj.get("format") != NATIVE_FORMAT:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ResumeError(
            f"cannot resume from {path}: expected a training state (format {NATIVE_FORMAT!r}, kind "
            f"{TRAIN_STATE_KIND!r}), found {found}. " + resume_hint(path)
        )
    missing = [k for k in required if k not in obj]
    if missing or not isinstance(obj["step"], int) or obj["step"] < 0:
        raise ResumeError(
            f"cannot resume from {path}: incomplete training state (missing {missing}, step "
            f"{obj.get('step')!r}). " + resume_hint(path)
        )
    return obj


def saved_step(path: Path) -> int | str:
    """The ``step`` stored in checkpoint ``path``, or ``"unreadable"`` (for error messages)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "unreadable"


def rng_state() -> dict[str, Any]:
    """The global torch/NumPy/Python (and CUDA, once initialised) RNG states, as checkpoint-safe values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (
            name,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only for the GPUs visible now)."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
        for i, s in enumerate(cuda_states):
            torch.cuda.set_rng_state(s, i)


def frames_fingerprint(paths: Sequence[str]) -> str:
    """SHA-256 of the frame list (paths and order), stored to notice a changed list on resume."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def check_resumable(state: Mapping[str, Any], config: FCTrainConfig, paths: Sequence[str], path: Path) -> None:
    """Refuse a resume that would change the run (other trajectory options or frame count).

    Args:
        state: what :func:`load_train_state` read from ``path``.
        config: the current options.
        paths: the current frame list.
        path: the checkpoint (for messages).

    Raises:
        ResumeError: a :data:`~sfc.training.config.TRAJECTORY_FIELDS` value or the number of frames
            differs, or the checkpoint is already past ``config.steps``.
    """
    saved = state["config"]
    current = config.training_options()
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}"
        for k in TRAJECTORY_FIELDS
        if saved.get(k) != current[k]
    ]
    if diffs:
        raise ResumeError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(diffs)}). Use the "
            f"same settings, or another work_dir. " + resume_hint(path)
        )
    data = state["data"]
    if int(data.get("n_frames", -1)) != len(paths):
        raise ResumeError(
            f"cannot resume from {path}: it was trained on {data.get('n_frames')} frames, now {len(paths)}; "
            "the data order would change. Pass the same frame list. " + resume_hint(path)
        )
    if data.get("frames_sha256") != frames_fingerprint(paths):
        logger.warning(
            "%s: the frame list has the same length but other paths than at the checkpoint "
            "(moved data?); resuming with the same order over the new paths",
            path,
        )
    if saved.get("steps") != config.steps:
        logger.warning(
            "%s: steps changed from %s to %s; the EMA momentum schedule now follows the new length",
            path,
            saved.get("steps"),
            config.steps,
        )
    if state["step"] > config.steps:
        raise ResumeError(
            f"cannot resume from {path}: it is already at step {state['step']} > steps={config.steps}. "
            "Raise steps or use another work_dir."
        )


def read_metrics(path: Path) -> list[str]:
    """The lines of ``metrics.jsonl`` (none if the file does not exist)."""
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after ``last_step`` (by a run killed after its last checkpoint), atomically."""
    lines = read_metrics(path)
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    if len(kept) != len(lines):
        write_text(path, "".join(line + "\n" for line in kept))


def emit_metrics(
    metrics: dict[str, float],
    step: int,
    path: Path,
    log: Callable[[dict[str, float], int], None] | None,
    bar: Any,
) -> None:
    """Append a record to ``metrics.jsonl``, update the progress bar, log a line and call ``log``.

    Args:
        metrics: ``{'loss', 'lr', 'ema_momentum', 'images_per_second', 'epoch', 'skipped_images'}``.
        step: optimizer steps done.
        path: ``work_dir/metrics.jsonl``.
        log: the caller's callback (e.g. MLflow), or None.
        bar: the tqdm progress bar.
    """
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": step, **metrics}) + "\n")
    bar.set_postfix(loss=f"{metrics['loss']:.4f}", ips=f"{metrics['images_per_second']:.1f}")
    logger.info(
        "step %d: loss %.4f, lr %.2e, ema %.5f, %.1f img/s",
        step,
        metrics["loss"],
        metrics["lr"],
        metrics["ema_momentum"],
        metrics["images_per_second"],
    )
    if log is not None:
        log(dict(metrics), step)
