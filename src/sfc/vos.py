"""Semi-supervised video object segmentation by label propagation, one sequence at a time.

This glues the library pieces together without any Kedro/MLflow dependency: read a DAVIS-format
sequence (:mod:`sfc.data.davis`), stream stride-8 features (:mod:`sfc.models`), optionally fused
with a second (semantic) backbone's features (:mod:`sfc.fusion`, SFC eq. 7), propagate the
first-frame masks (:mod:`sfc.propagation`) and yield full-resolution id masks, frame by frame, so
memory does not grow with the video length.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sfc.data.davis import DavisSequence, iter_frames, load_sequence, onehot
from sfc.fusion import Align, check_fusion_args, late_fusion
from sfc.propagation.engine import iter_propagate
from sfc.propagation.labels import downsample_labels, upsample_argmax

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PropagationConfig:
    """The CRW/SFC label-propagation hyper-parameters (defaults: the paper's FC-only DAVIS values)."""

    topk: int = 10
    temperature: float = 0.05
    radius: float = 12.0
    context: int = 20


@dataclass
class SequenceStats:
    """Timing of one propagated sequence."""

    name: str
    frames: int = 0
    seconds: float = 0.0
    objects: int = 0
    feature_size: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class FramePrediction:
    """One predicted frame: (H, W) uint8 object ids at the annotation resolution."""

    sequence: str
    frame: str
    mask: np.ndarray


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_fusion(
    model: torch.nn.Module, semantic_model: torch.nn.Module | None, fusion_lambda: float, align: Align
) -> None:
    """Fail early (before any frame is read) when two backbones cannot be fused as asked.

    Raises:
        ValueError: ``fusion_lambda`` < 0 or not finite, unknown ``align``, or backbones of different
            ``stride`` with ``align="error"`` (their feature grids would differ).
    """
    if semantic_model is None:
        return
    check_fusion_args(fusion_lambda, align)
    fine_stride, sem_stride = getattr(model, "stride", None), getattr(semantic_model, "stride", None)
    if align == "error" and fine_stride is not None and sem_stride is not None and fine_stride != sem_stride:
        raise ValueError(
            f"cannot fuse the semantic backbone {getattr(semantic_model, 'arch', '?')} (stride {sem_stride}) "
            f"with the fine-grained backbone {getattr(model, 'arch', '?')} (stride {fine_stride}): their "
            "feature grids differ. Use align='resize' to resample the semantic features onto the fine grid, "
            "or backbones of equal stride (e.g. vit_small_patch8 with a ResNet)"
        )


def predict_sequence(
    seq: DavisSequence,
    model: torch.nn.Module,
    config: PropagationConfig,
    *,
    semantic_model: torch.nn.Module | None = None,
    fusion_lambda: float = 1.75,
    fusion_align: Align = "error",
    scale: float = 1.0,
    device: torch.device | None = None,
    batch_size: int = 4,
    stats: SequenceStats | None = None,
    progress: bool = True,
) -> Iterator[FramePrediction]:
    """Propagate the first-frame annotation of ``seq`` through all its frames.

    Args:
        seq: a validated sequence (see :func:`sfc.data.davis.load_sequence`).
        model: the (fine-grained) backbone returning (B, C, h, w) features.
        config: propagation hyper-parameters.
        semantic_model: optional second backbone; when given, each frame's features are
            ``late_fusion(semantic, fine, fusion_lambda)`` (SFC eq. 7) and labels live on the fused grid.
        fusion_lambda: weight of the fine-grained part (paper, DAVIS: 1.75); unused without
            ``semantic_model``.
        fusion_align: ``"error"`` (different feature grids are an error) or ``"resize"`` (semantic
            features resampled onto the fine grid), see :func:`sfc.fusion.late_fusion`.
        scale: input resize factor before the network(s) (1.0 = native resolution).
        device: where features and propagation run (default: CUDA if available).
        batch_size: frames per forward pass (of each network).
        stats: filled with frame count and wall time when given.
        progress: show a tqdm bar for the sequence.

    Yields:
        a :class:`FramePrediction` per frame, frame 0 first (its prediction is the annotation
        resampled down and up again, as in the official protocol).
    """
    from sfc.models.backbones import iter_features  # local: keeps `import sfc.vos` light

    check_fusion(model, semantic_model, fusion_lambda, fusion_align)
    device = device or resolve_device(None)
    H, W = seq.size
    ids = np.array([0, *seq.object_ids], dtype=np.uint8)
    first_onehot = torch.from_numpy(onehot(seq.first_mask, seq.object_ids))
    kwargs = {"batch_size": batch_size, "device": device, "scale": scale, "output_device": device}
    feats: Iterator[torch.Tensor]
    if semantic_model is None:
        feats = iter_features(model, iter_frames(seq), **kwargs)
    else:
        # Each frame is decoded once; tee buffers at most one batch between the two networks.
        frames_fine, frames_semantic = itertools.tee(iter_frames(seq))
        fine = iter_features(model, frames_fine, **kwargs)
        semantic = iter_features(semantic_model, frames_semantic, **kwargs)
        feats = (
            late_fusion(s, f, fusion_lambda, align=fusion_align) for f, s in zip(fine, semantic, strict=True)
        )
    stats = stats if stats is not None else SequenceStats(seq.name)
    if semantic_model is not None:
        stats.extra["fusion_lambda"] = float(fusion_lambda)
    stats.objects = len(seq.object_ids)
    t0 = time.perf_counter()
    first = next(feats)
    h, w = first.shape[-2:]
    stats.feature_size = (int(h), int(w))
    labels0 = downsample_labels(first_onehot, (h, w)).to(device)

    def with_first() -> Iterator[torch.Tensor]:
        yield first
        yield from feats

    soft_maps = iter_propagate(
        with_first(),
        labels0,
        topk=config.topk,
        temperature=config.temperature,
        radius=config.radius,
        context=config.context,
    )
    bar = tqdm(total=seq.num_frames, desc=seq.name, unit="frame", disable=not progress, leave=False)
    try:
        for name, soft in zip(seq.frame_names, soft_maps, strict=True):
            pred = upsample_argmax(soft, (H, W)).cpu().numpy()
            stats.frames += 1
            stats.seconds = time.perf_counter() - t0
            bar.update(1)
            yield FramePrediction(seq.name, name, ids[pred])
    finally:
        bar.close()
    logger.info(
        "%s: %d frames, %d objects, features %dx%d, %.2f frames/s",
        seq.name, stats.frames, stats.objects, h, w, stats.fps,
    )


def predict_sequences(
    davis_root: str | Path,
    sequences: list[str],
    model: torch.nn.Module,
    config: PropagationConfig,
    *,
    semantic_model: torch.nn.Module | None = None,
    fusion_lambda: float = 1.75,
    fusion_align: Align = "error",
    max_frames: int | None = None,
    scale: float = 1.0,
    device: torch.device | None = None,
    stats_out: list[SequenceStats] | None = None,
    progress: bool = True,
) -> Iterator[FramePrediction]:
    """:func:`predict_sequence` over several sequences, validating each before its long work.

    ``semantic_model`` / ``fusion_lambda`` / ``fusion_align``: optional late fusion, see
    :func:`predict_sequence`.
    """
    for name in sequences:
        seq = load_sequence(davis_root, name, max_frames=max_frames)
        stats = SequenceStats(name)
        if stats_out is not None:
            stats_out.append(stats)
        yield from predict_sequence(
            seq, model, config,
            semantic_model=semantic_model, fusion_lambda=fusion_lambda, fusion_align=fusion_align,
            scale=scale, device=device, stats=stats, progress=progress,
        )
