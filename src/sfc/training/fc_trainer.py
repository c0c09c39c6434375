"""Training loop of the fine-grained correspondence (FC) network, resumable and optionally distributed.

:func:`train_fc` trains :class:`~sfc.models.fc.FineGrained` on a list of frame files (SFC A.1: two crops
of one YouTube-VOS frame, Adam lr 1e-3, batch 96, 60k iterations) and writes into ``work_dir``:

* ``last.ckpt``: the full training state every ``checkpoint_every`` steps and at the end (model,
  optimizer, step, RNG states, data-order state, config). Written atomically (temporary file + fsync +
  ``os.replace``); the previous one is kept as ``last.prev.ckpt``. A rerun of the same call resumes from
  it automatically.
* ``fc.pth``: the final export (layout ``sfc_native``: the official ``{'model': {'online_encoder.*',
  'online_projector.*', 'predictor.*', 'target_*'}}`` keys plus ``format``/``arch``/``step``/``config``),
  loadable by :func:`sfc.models.checkpoints.load_backbone` and by the official SFC tooling.
* ``metrics.jsonl``: one JSON record per logged step (the same dict the ``log`` callback gets).

Data order: the frames form an endless stream of per-epoch permutations, each seeded by ``(seed,
epoch)``; step ``s`` consumes stream positions ``[s * B, (s + 1) * B)`` and the crops of position ``p``
are drawn from a generator seeded by ``(seed, p)``. The data of a step therefore depends only on the
seed and the step, whatever the number of DataLoader workers, processes or restarts, and resuming needs
nothing but the step (the checkpoint also stores the epoch/position for inspection).

Determinism: with ``deterministic=True`` on CPU (``torch.use_deterministic_algorithms(True)``), a run
that is killed and rerun ends with weights bit-identical to an uninterrupted run with the same seed, on
the same machine with the same thread count and world size.

Distributed: when ``torch.distributed`` is initialised, or the environment carries torchrun's
``WORLD_SIZE``/``RANK``/``LOCAL_RANK``/``MASTER_ADDR``, the online network is wrapped in
``DistributedDataParallel`` and each rank takes a contiguous ``B / world_size`` slice of every step's
global batch (``batch_size`` is the *global* batch). Only rank 0 writes files and logs metrics; every
rank reads ``last.ckpt`` on resume, so for several machines ``work_dir`` must be on a shared file
system. BatchNorm statistics stay per process (the official code trains on one GPU with batch 96, so
with N processes each BN sees B / N samples); ``sync_bn=True`` (CUDA only) synchronises them instead.
:func:`launch_fc_training` starts N local processes from Python (``torch.distributed.launcher``);
``python -m sfc.training`` (:func:`main`) is the script form for ``torchrun`` (several machines).

Precision: on CUDA, bf16 autocast (``amp``) and channels_last; the loss itself is computed in float32.
On CPU everything is float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from sfc.data.crops import TwoCropsWithCoords
from sfc.models.backbones import FEATURE_DIMS
from sfc.models.checkpoints import NATIVE_FORMAT, CheckpointError
from sfc.models.fc import FineGrained
from sfc.training.schedules import ema_momentum

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.ckpt"
"""Training state in ``work_dir``, rewritten every ``checkpoint_every`` steps."""
PREVIOUS_CHECKPOINT_NAME = "last.prev.ckpt"
"""The training state before the latest save."""
EXPORT_NAME = "fc.pth"
"""Final weights in ``work_dir`` (layout ``sfc_native``)."""
METRICS_NAME = "metrics.jsonl"
"""Logged metrics in ``work_dir``, one JSON object per line."""
TRAIN_STATE_KIND = "fc_train_state"
EXPORT_KIND = "fc_export"

# Options that shape the optimisation trajectory: a resumed run must use the same values.
_TRAJECTORY_FIELDS = (
    "arch",
    "batch_size",
    "image_size",
    "lr",
    "weight_decay",
    "momentum_base",
    "radius",
    "scale_min",
    "scale_max",
    "flip",
    "projection_hidden_dim",
    "projection_dim",
    "prediction_hidden_dim",
    "seed",
    "min_size",
)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class ResumeError(CheckpointError):
    """``last.ckpt`` cannot be resumed from (unreadable, not a training state, or incompatible)."""


@dataclass
class FCTrainConfig:
    """Options of :func:`train_fc`; defaults are the paper's (SFC appendix A.1) unless noted.

    Attributes:
        arch: backbone; paper "resnet18" (layer3/layer4 stride 1 -> 32 x 32 map at 256 px).
        steps: total optimizer steps; paper 60k. Also the length of the EMA momentum schedule.
        batch_size: *global* batch (frames per step, split across processes); paper 96.
        image_size: side of both crops; paper 256.
        scale_min: smallest crop area as a fraction of the frame; paper 0.0.
        scale_max: largest crop area fraction; paper 1.0.
        flip: random horizontal flip of each view. Official code: none ("crop-only"), so False.
        lr: Adam learning rate, constant; paper 1e-3.
        weight_decay: Adam weight decay; paper 0.
        momentum_base: initial EMA momentum, raised to 1 on a cosine schedule; paper 0.99.
        radius: positive radius in units of the larger feature-bin diagonal; paper 0.5.
        projection_hidden_dim: projector hidden channels; paper 2048.
        projection_dim: projector/predictor output channels; paper 256.
        prediction_hidden_dim: predictor hidden channels; paper 2048.
        seed: seed of the init, the data order and the crops (official default 777; ours 0).
        checkpoint_every: steps between ``last.ckpt`` saves (about 210 MB each for ResNet-18 with the
            paper's heads: online + target weights + Adam moments).
        log_every: steps between metric logs (callback, ``metrics.jsonl``, log line).
        max_minutes: wall-time budget; when exceeded the run stops cleanly after the current step,
            saving ``last.ckpt`` and ``fc.pth``. None: no limit.
        num_workers: DataLoader worker processes per training process (JPEG decoding + crops).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        min_size: frames whose shorter side is below this many pixels are skipped and reported
            (crops of tiny frames are mostly upsampled blur). Not in the paper; YouTube-VOS frames are
            >= 720 px wide, so the default 64 only catches broken/thumbnail files.
        deterministic: ``torch.use_deterministic_algorithms(True)``, cuDNN benchmark off; needed for
            bit-identical resumes. Slower on GPU.
        amp: bf16 autocast on CUDA (ignored on CPU, which always runs float32).
        sync_bn: SyncBatchNorm across processes (CUDA + distributed only). Off: per-process BN, which
            equals the official single-GPU setting when one process holds the whole batch.
        progress: show a tqdm progress bar on rank 0.
    """

    arch: str = "resnet18"
    steps: int = 60_000
    batch_size: int = 96
    image_size: int = 256
    scale_min: float = 0.0
    scale_max: float = 1.0
    flip: bool = False
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum_base: float = 0.99
    radius: float = 0.5
    projection_hidden_dim: int = 2048
    projection_dim: int = 256
    prediction_hidden_dim: int = 2048
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    max_minutes: float | None = None
    num_workers: int = 4
    device: str = "auto"
    min_size: int = 64
    deterministic: bool = False
    amp: bool = True
    sync_bn: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.arch not in FEATURE_DIMS:
            problems.append(f"arch must be one of {sorted(FEATURE_DIMS)}, got {self.arch!r}")
        for name in ("steps", "batch_size", "image_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("projection_hidden_dim", "projection_dim", "prediction_hidden_dim"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.scale_min <= self.scale_max <= 1.0:
            problems.append(f"need 0 <= scale_min <= scale_max <= 1, got {self.scale_min}, {self.scale_max}")
        if self.lr <= 0 or self.weight_decay < 0:
            problems.append(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0.0 <= self.momentum_base <= 1.0:
            problems.append(f"momentum_base must be in [0, 1], got {self.momentum_base}")
        if self.radius <= 0:
            problems.append(f"radius must be > 0, got {self.radius}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            problems.append(f"max_minutes must be > 0 or None, got {self.max_minutes}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if self.min_size < 2:
            problems.append(f"min_size must be >= 2 (crop boxes divide by size - 1), got {self.min_size}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if problems:
            raise ValueError("invalid FCTrainConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FCTrainConfig:
        """Build from a parameters dict, rejecting unknown keys (typos must not be ignored silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FCTrainConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_fc` did.

    Attributes:
        final_step: optimizer steps done in total (== ``config.steps`` unless stopped early).
        start_step: step the run resumed from (0 for a fresh run).
        wall_seconds: wall time of this call.
        images_per_second: frames per second over this call's training steps (global, all ranks).
        export_path: ``work_dir/fc.pth`` (None on ranks other than 0).
        checkpoint_path: ``work_dir/last.ckpt``.
        stopped_early: the ``max_minutes`` budget ended the run before ``config.steps``.
        n_skipped_images: frames skipped as unreadable or too small during this call (all ranks).
        last_loss: loss of the last step (mean over ranks), None if no step ran.
        world_size: number of training processes.
        device: device of rank 0's training.
        replicas_identical: distributed runs only (else None): every rank's final parameters (online
            and target) have the same SHA-256 digest as rank 0's.
    """

    final_step: int
    start_step: int
    wall_seconds: float
    images_per_second: float
    export_path: Path | None
    checkpoint_path: Path
    stopped_early: bool
    n_skipped_images: int
    last_loss: float | None
    world_size: int
    device: str
    replicas_identical: bool | None = None


# --------------------------------------------------------------------------------------------------------
# Data: a seeded, resumable stream of frames and their crops
# --------------------------------------------------------------------------------------------------------


def _derived_seed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from ``seed`` and a key (independent streams per key)."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class FrameDataset(Dataset):
    """Frames of an endless seeded stream, each returned as two crops with their boxes.

    The dataset is indexed by *stream position* ``p >= 0`` (not by frame): epoch ``p // N`` is a
    permutation of the N frames seeded by ``(seed, epoch)``, and the crops of position ``p`` come from a
    generator seeded by ``(seed, p)``. A frame that cannot be read (missing, corrupt, not an image) or
    whose shorter side is below ``min_size`` is skipped: the next frame of the list is used instead (same
    crop generator), and the skip is reported in the sample's ``skipped`` entry.

    Args:
        paths: frame files (any format PIL reads; converted to RGB).
        crops: the two-view transform (default: the paper's, 256 px, scale [0, 1], no flip).
        seed: seed of the order and the crops.
        min_size: minimum shorter side in pixels.
        max_consecutive_skips: give up (RuntimeError) after this many unusable frames in a row.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        crops: TwoCropsWithCoords | None = None,
        *,
        seed: int = 0,
        min_size: int = 2,
        max_consecutive_skips: int = 100,
    ) -> None:
        if len(paths) == 0:
            raise ValueError("FrameDataset needs at least one frame path")
        self.paths = [str(p) for p in paths]
        self.crops = crops if crops is not None else TwoCropsWithCoords()
        self.seed = seed
        self.min_size = max(2, int(min_size))
        self.max_consecutive_skips = max_consecutive_skips
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        """Frames per epoch (positions are unbounded)."""
        return len(self.paths)

    def frame_index(self, position: int) -> int:
        """Index into ``paths`` of stream position ``position``."""
        epoch, offset = divmod(int(position), len(self.paths))
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(_derived_seed(self.seed, 0, epoch))
            self._perm = torch.randperm(len(self.paths), generator=gen).numpy()
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def _load(self, index: int) -> Image.Image:
        path = self.paths[index]
        with Image.open(path) as img:
            rgb = img.convert("RGB")  # forces the full decode inside the try of the caller
        if min(rgb.size) < self.min_size:
            raise _TooSmall(f"{rgb.size[0]}x{rgb.size[1]} px, shorter side below min_size {self.min_size}")
        return rgb

    def __getitem__(self, position: int) -> dict[str, Any]:
        """Two crops of the frame at stream position ``position``.

        Returns:
            ``{'view1', 'view2': (3, S, S) float32, 'box1', 'box2': (4,) float32, 'position': int,
            'frame': int (index into paths), 'skipped': list of "path: reason" strings}``.
        """
        index = self.frame_index(position)
        skipped: list[str] = []
        for attempt in range(self.max_consecutive_skips):
            candidate = (index + attempt) % len(self.paths)
            try:
                img = self._load(candidate)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, _TooSmall) as exc:
                skipped.append(f"{self.paths[candidate]}: {type(exc).__name__}: {exc}")
                continue
            gen = torch.Generator().manual_seed(_derived_seed(self.seed, 1, int(position)))
            pair = self.crops(img, gen)
            return {
                "view1": pair.view1,
                "view2": pair.view2,
                "box1": pair.box1,
                "box2": pair.box2,
                "position": int(position),
                "frame": candidate,
                "skipped": skipped,
            }
        raise RuntimeError(
            f"{self.max_consecutive_skips} consecutive frames could not be used, starting at "
            f"{self.paths[index]}; e.g. {skipped[0]}. Check the frame list."
        )


class _TooSmall(Exception):
    """A frame below ``min_size``."""


def collate_crops(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack :class:`FrameDataset` samples; ``skipped`` lists are concatenated."""
    out: dict[str, Any] = {
        k: torch.stack([s[k] for s in samples]) for k in ("view1", "view2", "box1", "box2")
    }
    out["position"] = torch.tensor([s["position"] for s in samples], dtype=torch.long)
    out["frame"] = torch.tensor([s["frame"] for s in samples], dtype=torch.long)
    out["skipped"] = [msg for s in samples for msg in s["skipped"]]
    return out


class StepSampler(Sampler[int]):
    """Stream positions of steps ``[start_step, end_step)`` for one rank.

    Step ``s`` covers positions ``[s * B, (s + 1) * B)``; rank ``r`` of ``world_size`` takes the
    contiguous slice ``[s * B + r * b, s * B + (r + 1) * b)`` with ``b = B / world_size``, so a
    DataLoader with ``batch_size=b`` yields exactly one step's shard per batch.
    """

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        self.start_step, self.end_step = start_step, end_step
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.per_rank = batch_size // world_size

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            first = step * self.batch_size + self.rank * self.per_rank
            yield from range(first, first + self.per_rank)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.per_rank


# --------------------------------------------------------------------------------------------------------
# Checkpoint files
# --------------------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def previous_path(path: Path) -> Path:
    """``last.ckpt`` -> ``last.prev.ckpt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def atomic_save(obj: Any, path: str | Path, *, keep_previous: bool = False) -> Path:
    """``torch.save`` to ``path`` so that a crash at any moment leaves a complete file.

    The object goes to a temporary file in the same directory, which is flushed, fsynced and renamed
    over ``path`` (``os.replace`` is atomic). With ``keep_previous`` the old ``path`` is first hard-linked
    (or copied) to ``<stem>.prev<suffix>``, so at every instant a complete ``path`` exists.

    Returns:
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous and path.exists():
            prev = previous_path(path)
            prev_tmp = prev.with_name(f".{prev.name}.tmp-{os.getpid()}")
            prev_tmp.unlink(missing_ok=True)
            try:
                os.link(path, prev_tmp)
            except OSError:
                shutil.copy2(path, prev_tmp)
            os.replace(prev_tmp, prev)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _resume_hint(path: Path) -> str:
    prev = previous_path(path)
    hint = f"Delete {path} to restart training from scratch"
    if prev.exists():
        hint += f", or move the previous checkpoint {prev} over it to resume from there"
    return hint + "."


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Read and validate a training-state checkpoint written by :func:`train_fc`.

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
            + _resume_hint(path)
        ) from exc
    required = ("model", "optimizer", "step", "rng", "data", "config")
    if not isinstance(obj, dict) or obj.get("kind") != TRAIN_STATE_KIND or obj.get("format") != NATIVE_FORMAT:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ResumeError(
            f"cannot resume from {path}: expected a training state (format {NATIVE_FORMAT!r}, kind "
            f"{TRAIN_STATE_KIND!r}), found {found}. " + _resume_hint(path)
        )
    missing = [k for k in required if k not in obj]
    if missing or not isinstance(obj["step"], int) or obj["step"] < 0:
        raise ResumeError(
            f"cannot resume from {path}: incomplete training state (missing {missing}, step "
            f"{obj.get('step')!r}). " + _resume_hint(path)
        )
    return obj


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
        for i, s in enumerate(cuda_states):
            torch.cuda.set_rng_state(s, i)


def _frames_fingerprint(paths: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _check_resumable(
    state: Mapping[str, Any], config: FCTrainConfig, paths: Sequence[str], path: Path
) -> None:
    saved = state["config"]
    current = asdict(config)
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}"
        for k in _TRAJECTORY_FIELDS
        if saved.get(k) != current[k]
    ]
    if diffs:
        raise ResumeError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(diffs)}). Use the "
            f"same settings, or another work_dir. " + _resume_hint(path)
        )
    data = state["data"]
    if int(data.get("n_frames", -1)) != len(paths):
        raise ResumeError(
            f"cannot resume from {path}: it was trained on {data.get('n_frames')} frames, now {len(paths)}; "
            "the data order would change. Pass the same frame list. " + _resume_hint(path)
        )
    if data.get("frames_sha256") != _frames_fingerprint(paths):
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


def _read_metrics(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after ``last_step`` (by a run killed after its last checkpoint)."""
    lines = _read_metrics(path)
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    if len(kept) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------------
# Distributed setup
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(want_cuda: bool) -> _DistContext:
    """Join the process group if torchrun-style env variables ask for one (or use an existing one)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return _DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _DistContext()
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} but torch.distributed is not available in this build")
    backend = "nccl" if want_cuda else "gloo"
    if want_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return _DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA (this process's local rank) if available, else CPU; explicit names are checked."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


# --------------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    # Nothing in training draws from the global RNGs (init, order and crops use private seeded
    # generators); they are seeded and checkpointed anyway so that user hooks stay reproducible.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def build_fc_model(config: FCTrainConfig) -> FineGrained:
    """The FC network of ``config`` with its seeded init (CPU, training mode)."""
    return FineGrained(
        config.arch,
        projection_hidden_dim=config.projection_hidden_dim,
        projection_dim=config.projection_dim,
        prediction_hidden_dim=config.prediction_hidden_dim,
        radius=config.radius,
        seed=config.seed,
    )


def build_optimizer(model: FineGrained, config: FCTrainConfig) -> torch.optim.Optimizer:
    """Adam over the online parameters (the target has no gradients), constant lr (SFC A.1)."""
    return torch.optim.Adam(model.online_parameters(), lr=config.lr, weight_decay=config.weight_decay)


def build_frame_dataset(frame_paths: Sequence[str | os.PathLike[str]], config: FCTrainConfig) -> FrameDataset:
    """The seeded frame stream of ``config`` (crops, seed, min_size)."""
    crops = TwoCropsWithCoords(
        config.image_size, scale=(config.scale_min, config.scale_max), flip=config.flip
    )
    return FrameDataset(frame_paths, crops, seed=config.seed, min_size=config.min_size)


def _model_state_cpu(model: FineGrained) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
        for k, v in model.state_dict().items()
    }


def train_fc(
    frame_paths: Sequence[str | os.PathLike[str]],
    config: FCTrainConfig | None = None,
    *,
    work_dir: str | Path,
    log: Callable[[dict[str, float], int], None] | None = None,
) -> TrainResult:
    """Train the FC network on frame files, resuming from ``work_dir/last.ckpt`` when it exists.

    Args:
        frame_paths: frame image files (order matters: it seeds the data order together with
            ``config.seed``; pass the same list to resume).
        config: options (default: the paper's).
        work_dir: directory of ``last.ckpt``, ``last.prev.ckpt``, ``fc.pth`` and ``metrics.jsonl``.
        log: called on rank 0 every ``log_every`` steps with ``({'loss', 'lr', 'ema_momentum',
            'images_per_second', 'epoch', 'skipped_images'}, step)``; ``loss`` is the mean over the
            steps since the previous log.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: empty frame list, or a batch size not divisible by the number of processes.
        ResumeError: ``last.ckpt`` is unreadable or incompatible (the message names it and what to do).
        TrainingDivergedError: the loss became NaN/inf; ``last.ckpt`` keeps the last good state.
        RuntimeError: too many consecutive unusable frames, or CUDA requested but unavailable.
    """
    config = config if config is not None else FCTrainConfig()
    paths = [str(p) for p in frame_paths]
    if not paths:
        raise ValueError("train_fc needs at least one frame path")
    started = time.monotonic()
    want_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    ctx = _init_distributed(want_cuda)
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        return _train(paths, config, Path(work_dir), log, ctx, started)
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.backends.cudnn.benchmark = previous_benchmark
        if ctx.owns_group:
            dist.destroy_process_group()


@torch.enable_grad()  # training must not inherit a caller's no_grad (e.g. a suspended generator's)
def _train(
    paths: list[str],
    config: FCTrainConfig,
    work_dir: Path,
    log: Callable[[dict[str, float], int], None] | None,
    ctx: _DistContext,
    started: float,
) -> TrainResult:
    if config.batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} (global) is not divisible by the {ctx.world_size} processes"
        )
    device = resolve_device(config.device, ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if not config.deterministic:
            torch.backends.cudnn.benchmark = True
    if config.sync_bn and not (ctx.enabled and device.type == "cuda"):
        raise ValueError("sync_bn=True needs CUDA and several processes (SyncBatchNorm has no CPU kernel)")
    ckpt_path = work_dir / CHECKPOINT_NAME
    export_path = work_dir / EXPORT_NAME
    metrics_path = work_dir / METRICS_NAME
    if ctx.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        for stale in work_dir.glob(".*.tmp-*"):  # partial files of a killed save
            stale.unlink(missing_ok=True)
    _barrier(ctx)

    model = build_fc_model(config)
    _seed_everything(config.seed)
    resume_from = ckpt_path if ckpt_path.exists() else None
    if resume_from is None and previous_path(ckpt_path).exists():
        resume_from = previous_path(ckpt_path)
        logger.warning("%s is missing; resuming from %s", ckpt_path, resume_from)
    state: dict[str, Any] | None = None
    start_step = 0
    if resume_from is not None:
        state = load_train_state(resume_from)
        _check_resumable(state, config, paths, resume_from)
        try:
            model.load_state_dict(state["model"], strict=True)
        except RuntimeError as exc:
            raise ResumeError(
                f"cannot resume from {resume_from}: {exc}. " + _resume_hint(resume_from)
            ) from exc
        start_step = int(state["step"])
        if int(state.get("world_size", ctx.world_size)) != ctx.world_size:
            logger.warning(
                "%s was written by %s processes, now %s: per-process BatchNorm statistics change",
                resume_from,
                state.get("world_size"),
                ctx.world_size,
            )
    _check_same_step(ctx, start_step)

    if config.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[assignment]
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, config)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        logger.info("Resumed FC training from %s at step %d", resume_from, start_step)
    del state
    if ctx.is_main:
        _truncate_metrics(metrics_path, start_step)

    net: torch.nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    dataset = build_frame_dataset(paths, config)
    per_rank = config.batch_size // ctx.world_size
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=StepSampler(start_step, config.steps, config.batch_size, ctx.rank, ctx.world_size),
        num_workers=config.num_workers,
        collate_fn=collate_crops,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and config.amp
        else nullcontext()
    )
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    frames_sha = _frames_fingerprint(paths)

    def save(step: int) -> None:
        if ctx.is_main:
            train_state = model_export(step, kind=TRAIN_STATE_KIND)
            train_state.update(
                optimizer=optimizer.state_dict(),
                rng=_rng_state(),
                world_size=ctx.world_size,
                data={
                    "seed": config.seed,
                    "n_frames": len(paths),
                    "frames_sha256": frames_sha,
                    "position": step * config.batch_size,
                    "epoch": (step * config.batch_size) // len(paths),
                },
            )
            atomic_save(train_state, ckpt_path, keep_previous=True)
        _barrier(ctx)

    def model_export(step: int, *, kind: str) -> dict[str, Any]:
        base = _unwrap(model)
        return base.export_checkpoint(step=step, kind=kind, config=asdict(config))

    logger.info(
        "FC training: %d frames, steps %d -> %d, global batch %d over %d process(es), device %s%s",
        len(paths),
        start_step,
        config.steps,
        config.batch_size,
        ctx.world_size,
        device,
        " (bf16 autocast, channels_last)" if device.type == "cuda" and config.amp else "",
    )
    step = start_step
    n_skipped = 0
    last_loss: float | None = None
    stopped_early = False
    window_losses: list[float] = []
    window_start, window_step = time.monotonic(), step
    loop_start = time.monotonic()
    warned_skips = 0
    model.train()
    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc="FC training",
        unit="step",
        disable=not (ctx.is_main and config.progress),
        dynamic_ncols=True,
    )
    try:
        for batch in loader:
            view1 = batch["view1"].to(device, non_blocking=True, memory_format=memory_format)
            view2 = batch["view2"].to(device, non_blocking=True, memory_format=memory_format)
            box1 = batch["box1"].to(device, non_blocking=True)
            box2 = batch["box2"].to(device, non_blocking=True)
            momentum = ema_momentum(step, config.steps, config.momentum_base)
            # Official order: EMA update with the current online weights, then the target pass.
            _unwrap(model).update_target(momentum)
            with autocast:
                loss = net(view1, view2, box1, box2)
            over_time = (
                config.max_minutes is not None and (time.monotonic() - started) > 60 * config.max_minutes
            )
            loss_value, stop, step_skips = _reduce_step(ctx, loss.detach(), over_time, len(batch["skipped"]))
            if not math.isfinite(loss_value):
                good = f"{ckpt_path} (step {_saved_step(ckpt_path)})" if ckpt_path.exists() else "none yet"
                raise TrainingDivergedError(
                    f"non-finite FC loss ({loss_value}) at step {step + 1} of {config.steps}; training stopped "
                    f"without saving. Last good checkpoint: {good}."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            last_loss = loss_value
            window_losses.append(loss_value)
            n_skipped += step_skips
            if ctx.is_main and batch["skipped"] and warned_skips < 20:
                for msg in batch["skipped"][: 20 - warned_skips]:
                    logger.warning("skipped frame %s", msg)
                warned_skips += len(batch["skipped"])
            bar.update(1)
            if step % config.checkpoint_every == 0 or step == config.steps or stop:
                save(step)
            if step % config.log_every == 0 or step == config.steps or stop:
                now = time.monotonic()
                metrics = {
                    "loss": float(np.mean(window_losses)),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "ema_momentum": float(momentum),
                    "images_per_second": (step - window_step)
                    * config.batch_size
                    / max(now - window_start, 1e-9),
                    "epoch": step * config.batch_size / len(paths),
                    "skipped_images": float(n_skipped),
                }
                window_losses, window_start, window_step = [], now, step
                if ctx.is_main:
                    _emit_metrics(metrics, step, metrics_path, log, bar)
            if stop:
                stopped_early = True
                logger.warning(
                    "max_minutes=%s reached: stopping at step %d of %d",
                    config.max_minutes,
                    step,
                    config.steps,
                )
                break
    finally:
        bar.close()

    loop_seconds = time.monotonic() - loop_start
    final_export: Path | None = None
    if ctx.is_main:
        final_export = atomic_save(model_export(step, kind=EXPORT_KIND), export_path)
        logger.info("Wrote %s (step %d)", final_export, step)
    replicas_identical = _replicas_identical(model, ctx)
    steps_run = step - start_step
    result = TrainResult(
        final_step=step,
        start_step=start_step,
        wall_seconds=time.monotonic() - started,
        images_per_second=steps_run * config.batch_size / loop_seconds
        if steps_run and loop_seconds > 0
        else 0.0,
        export_path=final_export,
        checkpoint_path=ckpt_path,
        stopped_early=stopped_early,
        n_skipped_images=n_skipped,
        last_loss=last_loss,
        world_size=ctx.world_size,
        device=str(device),
        replicas_identical=replicas_identical,
    )
    if n_skipped and ctx.is_main:
        logger.warning(
            "%d frames were skipped (unreadable or smaller than %d px)", n_skipped, config.min_size
        )
    return result


def _unwrap(model: torch.nn.Module) -> FineGrained:
    inner = model.module if hasattr(model, "module") else model
    assert isinstance(inner, FineGrained)
    return inner


def _state_digest(model: FineGrained) -> str:
    digest = hashlib.sha256()
    for key, value in model.named_parameters():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _replicas_identical(model: FineGrained, ctx: _DistContext) -> bool | None:
    """Compare every rank's final parameters with rank 0's (bitwise, through SHA-256 digests).

    Buffers are left out: DDP broadcasts rank 0's BatchNorm running statistics before every forward,
    but the last forward updates each rank's copy with its own shard (only rank 0's are saved).
    """
    if not ctx.enabled:
        return None
    digests: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(digests, _state_digest(_unwrap(model)))
    same = all(d == digests[0] for d in digests)
    if not same and ctx.is_main:
        logger.error("FC model replicas differ across ranks after training: %s", digests)
    return same


def _saved_step(path: Path) -> int | str:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "unreadable"


def _barrier(ctx: _DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def _check_same_step(ctx: _DistContext, step: int) -> None:
    if not ctx.enabled:
        return
    t = torch.tensor([step, -step], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != step or int(-t[1]) != step:
        raise ResumeError(
            f"ranks disagree on the resume step (this rank {step}, max {int(t[0])}, min {int(-t[1])}): "
            "work_dir must be on a file system shared by all processes"
        )


def _reduce_step(
    ctx: _DistContext, loss: torch.Tensor, over_time: bool, skips: int
) -> tuple[float, bool, int]:
    """(mean loss over ranks, any rank over its time budget, skipped frames over ranks)."""
    if not ctx.enabled:
        return float(loss), over_time, skips
    t = torch.stack(
        [
            loss.float(),
            torch.tensor(float(over_time), device=loss.device),
            torch.tensor(float(skips), device=loss.device),
        ]
    )
    dist.all_reduce(t)
    return float(t[0]) / ctx.world_size, bool(t[1] > 0), int(t[2])


def _emit_metrics(
    metrics: dict[str, float],
    step: int,
    path: Path,
    log: Callable[[dict[str, float], int], None] | None,
    bar: Any,
) -> None:
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


# --------------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------------


def _launched_entry(paths: list[str], config: dict[str, Any], work_dir: str, log_level: int) -> TrainResult:
    """Body of each process started by :func:`launch_fc_training` (module level: must be picklable)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level,
            format=f"[rank {os.environ.get('RANK', '?')}] %(levelname)s %(name)s: %(message)s",
        )
    return train_fc(paths, FCTrainConfig(**config), work_dir=work_dir)


def launch_fc_training(
    nproc_per_node: int,
    frame_paths: Sequence[str | os.PathLike[str]],
    config: FCTrainConfig | None = None,
    *,
    work_dir: str | Path,
    nnodes: int = 1,
    rdzv_endpoint: str = "127.0.0.1:0",
    run_id: str | None = None,
    max_restarts: int = 0,
    log_level: int = logging.INFO,
) -> TrainResult | None:
    """Run :func:`train_fc` in ``nproc_per_node`` local processes (``torch.distributed.launcher``).

    The same as ``torchrun --nproc-per-node N -m sfc.training ...`` but from Python: each
    process joins a c10d rendezvous (``gloo`` on CPU, ``nccl`` on CUDA, one GPU per local rank) and runs
    ``train_fc`` with the same arguments. Metrics are not passed back through a callback (the processes
    are separate); rank 0 writes them to ``work_dir/metrics.jsonl``.

    Args:
        nproc_per_node: processes on this machine (GPUs per node on CUDA).
        frame_paths: as for :func:`train_fc`.
        config: as for :func:`train_fc`; ``batch_size`` is the global batch.
        work_dir: as for :func:`train_fc` (shared by all machines when ``nnodes > 1``).
        nnodes: machines; each runs this function with the same ``rdzv_endpoint`` and ``run_id``.
        rdzv_endpoint: ``host:port`` of the rendezvous; port 0 picks a free port (single machine only).
        run_id: rendezvous id shared by all machines (default: a fresh UUID; required when nnodes > 1).
        max_restarts: elastic restarts of the whole group on a failure (each restart resumes from
            ``last.ckpt``).
        log_level: logging level set up in the spawned processes.

    Returns:
        Rank 0's :class:`TrainResult` (None on machines that do not host rank 0).

    Raises:
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a process failed; the message
            carries its exception (e.g. :class:`TrainingDivergedError`).
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc_per_node < 1 or nnodes < 1:
        raise ValueError(f"need nproc_per_node >= 1 and nnodes >= 1, got {nproc_per_node}, {nnodes}")
    if nnodes > 1 and run_id is None:
        raise ValueError("run_id must be given (and equal on every machine) when nnodes > 1")
    config = config if config is not None else FCTrainConfig()
    launch = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=nproc_per_node,
        run_id=run_id or f"sfc-fc-{uuid.uuid4()}",
        rdzv_backend="c10d",
        rdzv_endpoint=rdzv_endpoint,
        max_restarts=max_restarts,
        monitor_interval=0.5,
        start_method="spawn",
    )
    results = elastic_launch(launch, _launched_entry)(
        [str(p) for p in frame_paths], asdict(config), str(work_dir), log_level
    )
    return results.get(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point (``python -m sfc.training``), e.g. ``torchrun --nproc-per-node 8 -m sfc.training ...``.

    ``--frames`` is a text file with one frame path per line; ``--config`` a JSON object of
    :class:`FCTrainConfig` fields (unknown keys are an error).
    """
    parser = argparse.ArgumentParser(prog="python -m sfc.training", description=main.__doc__)
    parser.add_argument("--frames", required=True, type=Path, help="text file, one frame path per line")
    parser.add_argument("--work-dir", required=True, type=Path, help="checkpoints, fc.pth, metrics.jsonl")
    parser.add_argument("--config", type=Path, default=None, help="JSON file of FCTrainConfig fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = [line.strip() for line in args.frames.read_text(encoding="utf-8").splitlines() if line.strip()]
    values = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
    result = train_fc(paths, FCTrainConfig.from_dict(values), work_dir=args.work_dir)
    if result.export_path is not None:
        sys.stdout.write(json.dumps(asdict(result), default=str) + "\n")
    return 0
