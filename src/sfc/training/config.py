"""Configuration and result of FC training: the ``fc_pretrain`` parameter group and :class:`TrainResult`.

:class:`FCTrainConfig` is the whole ``fc_pretrain`` group of ``conf/base/parameters_fc_pretrain.yml``
(the training options plus ``work_dir`` and ``nproc_per_node``). It has no defaults: every value comes
from that YAML file (or a JSON object with the same keys for ``python -m sfc.training``), and
:meth:`~sfc.config.StrictConfig.from_dict` rejects unknown, missing, mistyped and out-of-range values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sfc.config import StrictConfig
from sfc.device import DEVICE_PATTERN

__all__ = ["PLACEMENT_FIELDS", "TRAJECTORY_FIELDS", "FCTrainConfig", "TrainResult"]

TRAJECTORY_FIELDS: tuple[str, ...] = (
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
"""Options that shape the optimisation trajectory: a resumed run must use the same values."""

PLACEMENT_FIELDS: tuple[str, ...] = ("work_dir", "nproc_per_node")
"""Where and in how many processes a run happens; left out of the ``config`` stored in checkpoints."""


@dataclass(frozen=True)
class FCTrainConfig(StrictConfig):
    """The ``fc_pretrain`` parameter group: options of :func:`~sfc.training.train_fc` (SFC appendix A.1).

    Every field is required; the values (the paper's unless noted) live in
    ``conf/base/parameters_fc_pretrain.yml``.

    Attributes:
        arch: backbone; paper "resnet18" (layer3/layer4 stride 1 -> 32 x 32 map at 256 px).
        steps: total optimizer steps; paper 60k. Also the length of the EMA momentum schedule.
        batch_size: *global* batch (frames per step, split across processes); paper 96.
        image_size: side of both crops; paper 256.
        scale_min: smallest crop area as a fraction of the frame; paper 0.0.
        scale_max: largest crop area fraction; paper 1.0.
        flip: random horizontal flip of each view. Official code: none ("crop-only").
        lr: Adam learning rate, constant; paper 1e-3.
        weight_decay: Adam weight decay; paper 0.
        momentum_base: initial EMA momentum, raised to 1 on a cosine schedule; paper 0.99.
        radius: positive radius in units of the larger feature-bin diagonal; paper 0.5.
        projection_hidden_dim: projector hidden channels; paper 2048.
        projection_dim: projector/predictor output channels; paper 256.
        prediction_hidden_dim: predictor hidden channels; paper 2048.
        seed: seed of the init, the data order and the crops.
        checkpoint_every: steps between ``last.ckpt`` saves (about 210 MB each for ResNet-18 with the
            paper's heads: online + target weights + Adam moments).
        log_every: steps between metric logs (callback, ``metrics.jsonl``, log line).
        max_minutes: wall-time budget; when exceeded the run stops cleanly after the current step,
            saving ``last.ckpt`` and returning the export. None: no limit.
        num_workers: DataLoader worker processes per training process (JPEG decoding + crops).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        min_size: frames whose shorter side is below this many pixels are skipped and reported
            (crops of tiny frames are mostly upsampled blur; YouTube-VOS frames are >= 720 px wide).
        deterministic: ``torch.use_deterministic_algorithms(True)``, cuDNN benchmark off; needed for
            bit-identical resumes. Slower on GPU.
        amp: bf16 autocast on CUDA (ignored on CPU, which always runs float32).
        sync_bn: SyncBatchNorm across processes (CUDA + distributed only). Off: per-process BN, which
            equals the official single-GPU setting when one process holds the whole batch.
        progress: show a tqdm progress bar on rank 0.
        nproc_per_node: local processes of :func:`~sfc.training.launch_fc_training` (GPUs on CUDA);
            ``batch_size`` is split over them. 1: train in the calling process.
        work_dir: folder of the resume state (``last.ckpt``, ``last.prev.ckpt``) and ``metrics.jsonl``;
            rerunning with the same ``work_dir`` resumes.
    """

    GROUP: ClassVar[str] = "fc_pretrain"

    arch: str
    steps: int
    batch_size: int
    image_size: int
    scale_min: float
    scale_max: float
    flip: bool
    lr: float
    weight_decay: float
    momentum_base: float
    radius: float
    projection_hidden_dim: int
    projection_dim: int
    prediction_hidden_dim: int
    seed: int
    checkpoint_every: int
    log_every: int
    max_minutes: float | None
    num_workers: int
    device: str
    min_size: int
    deterministic: bool
    amp: bool
    sync_bn: bool
    progress: bool
    nproc_per_node: int
    work_dir: str

    def _problems(self) -> list[str]:
        from sfc.models.backbones import FEATURE_DIMS  # torch-heavy: only when a config is built

        problems: list[str] = []
        if self.arch not in FEATURE_DIMS:
            problems.append(f"arch: unknown {self.arch!r}; one of {', '.join(sorted(FEATURE_DIMS))}")
        for name in (
            "steps", "batch_size", "image_size", "checkpoint_every", "log_every",
            "projection_hidden_dim", "projection_dim", "prediction_hidden_dim", "nproc_per_node",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.scale_min <= self.scale_max <= 1.0:
            problems.append(
                f"scale_min: need 0 <= scale_min <= scale_max <= 1, got scale_min {self.scale_min}, "
                f"scale_max {self.scale_max}"
            )
        if not self.lr > 0:
            problems.append(f"lr: must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.momentum_base <= 1.0:
            problems.append(f"momentum_base: must be in [0, 1], got {self.momentum_base}")
        if not self.radius > 0:
            problems.append(f"radius: must be > 0, got {self.radius}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            problems.append(f"max_minutes: must be > 0 or null (no limit), got {self.max_minutes}")
        if self.num_workers < 0:
            problems.append(f"num_workers: must be >= 0, got {self.num_workers}")
        if self.min_size < 2:
            problems.append(f"min_size: must be >= 2 (crop boxes divide by size - 1), got {self.min_size}")
        if not DEVICE_PATTERN.match(self.device):
            problems.append(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.nproc_per_node >= 1 and self.batch_size >= 1 and self.batch_size % self.nproc_per_node:
            problems.append(
                f"batch_size: the global batch {self.batch_size} is not divisible by "
                f"nproc_per_node {self.nproc_per_node}"
            )
        if not self.work_dir.strip():
            problems.append("work_dir: must not be empty (the folder of last.ckpt and metrics.jsonl)")
        return problems

    def training_options(self) -> dict[str, Any]:
        """Every option but :data:`PLACEMENT_FIELDS`: the ``config`` stored in checkpoints."""
        return {k: v for k, v in self.to_dict().items() if k not in PLACEMENT_FIELDS}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`~sfc.training.train_fc` did.

    Attributes:
        final_step: optimizer steps done in total (== ``config.steps`` unless stopped early).
        start_step: step the run resumed from (0 for a fresh run).
        wall_seconds: wall time of this call.
        images_per_second: frames per second over this call's training steps (global, all ranks).
        export: on rank 0, the final export checkpoint (layout ``sfc_native``: ``{'format', 'arch',
            'step', 'kind', 'config', 'model': {'online_encoder.*', ...}}``, CPU tensors), loadable by
            :func:`sfc.models.checkpoints.load_backbone` once saved; None on other ranks. The trainer
            does not write it to a file: the caller does (the Kedro catalog, or ``python -m sfc.training``).
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
    export: dict[str, Any] | None
    checkpoint_path: Path
    stopped_early: bool
    n_skipped_images: int
    last_loss: float | None
    world_size: int
    device: str
    replicas_identical: bool | None
