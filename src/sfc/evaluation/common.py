"""The shared front door of every benchmark: which networks, which features, which propagation.

Each benchmark (``sfc.evaluation.davis``, later JHMDB and VIP) has its own reader, label encoding and
metric; what they share lives here:

* :func:`load_networks`: the fine-grained backbone and, optionally, the semantic network of SFC,
  loaded from the ``backbone`` / ``semantic`` / ``fusion`` parameter groups, checked to be fusable
  before any frame is read, on one device;
* :func:`iter_frame_features`: per-frame stride-8 features of a stream of RGB frames, late-fused
  (SFC eq. 7) when a semantic network is configured;
* :func:`propagate_labels`: the CRW/SFC label propagation of first-frame labels (any number of
  channels: object masks, part maps, joint heatmaps) through those features, streaming.

No Kedro or MLflow here; the pipelines call these functions with typed configs (:mod:`sfc.config`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sfc.config import BackboneConfig, FusionConfig, PropagationConfig, SemanticConfig, VideoBenchmarkConfig
from sfc.device import resolve_device
from sfc.fusion import Align, check_fusion_args, late_fusion
from sfc.propagation.engine import iter_propagate
from sfc.propagation.labels import downsample_labels

logger = logging.getLogger(__name__)

__all__ = ["FramePrediction", "Networks", "PredictionStats", "check_fusable", "describe_network", "iter_frame_features",
           "load_benchmark_networks", "load_network", "load_networks", "network_feature_maps", "propagate_labels"]


def describe_network(arch: str, info: Any) -> str:
    """``resnet18 (sfc_native, path/fc.pth, sha256 0123456789ab)`` or ``resnet18 (random init, seed 0)``."""
    if getattr(info, "path", None):
        return f"{arch} ({info.layout}, {info.path}, sha256 {info.sha256[:12]})"
    return f"{arch} (random init, seed {info.seed})"


def load_network(cfg: BackboneConfig | SemanticConfig, *, group: str) -> tuple[torch.nn.Module, Any]:
    """Build one network from its parameter group (``backbone`` or ``semantic``), on the CPU, eval mode.

    Raises:
        ValueError: ``cfg.arch`` is null.
        sfc.models.CheckpointError: the checkpoint file is missing or unreadable; the message names
            the file and the parameter ``<group>.checkpoint``.
    """
    from sfc.models.checkpoints import CheckpointError, load_backbone  # torch-heavy

    if cfg.arch is None:
        raise ValueError(f"{group}.arch is null: no network to load")
    try:
        model, info = load_backbone(cfg.arch, cfg.checkpoint, seed=cfg.seed)
    except CheckpointError as exc:
        raise type(exc)(f"{exc} (parameter {group}.checkpoint)") from exc
    return model.eval(), info


def check_fusable(fine: torch.nn.Module, semantic: torch.nn.Module, fusion: FusionConfig) -> None:
    """Fail before any frame is read when two networks cannot be fused as configured.

    Raises:
        ValueError: backbones of different stride with ``fusion.align: error`` (their feature grids
            would differ; ``resize`` resamples the semantic map onto the fine grid).
    """
    check_fusion_args(fusion.lam, fusion.align)
    fine_stride, sem_stride = getattr(fine, "stride", None), getattr(semantic, "stride", None)
    if fusion.align == "error" and None not in (fine_stride, sem_stride) and fine_stride != sem_stride:
        raise ValueError(
            f"cannot fuse the semantic network {getattr(semantic, 'arch', '?')} (stride {sem_stride}) with the "
            f"fine-grained network {getattr(fine, 'arch', '?')} (stride {fine_stride}): their feature grids "
            "differ. Set fusion.align=resize to resample the semantic features onto the fine grid, or use "
            "networks of equal stride (e.g. vit_small_patch8 with a ResNet)"
        )


@dataclass
class PredictionStats:
    """Timing of one propagated video (filled while its predictions are consumed).

    Attributes:
        name: video / sequence name.
        frames: frames predicted so far.
        seconds: wall time since the first frame was requested.
        labels: label channels propagated (DAVIS objects, VIP parts).
        feature_size: (h, w) feature grid.
        extra: anything else worth logging (e.g. the fusion lambda).
    """

    name: str
    frames: int = 0
    seconds: float = 0.0
    labels: int = 0
    feature_size: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames per second (NaN before the first frame)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class FramePrediction:
    """One predicted label map: (H, W) uint8 ids (object ids, part ids) at the annotation resolution."""

    sequence: str
    frame: str
    mask: np.ndarray


@dataclass
class Networks:
    """The networks of one evaluation and how their features are combined.

    Attributes:
        fine: the (fine-grained) backbone; labels live on its feature grid.
        semantic: the semantic network, or None (the fine network alone).
        lam: fusion weight of the fine part (SFC eq. 7); unused without ``semantic``.
        align: ``error`` or ``resize`` (see :func:`sfc.fusion.late_fusion`).
        device: where features and propagation run.
    """

    fine: torch.nn.Module
    semantic: torch.nn.Module | None
    lam: float
    align: Align
    device: torch.device

    @property
    def fused(self) -> bool:
        return self.semantic is not None


def load_networks(
    backbone: BackboneConfig, semantic: SemanticConfig, fusion: FusionConfig, device: str
) -> Networks:
    """Load ``backbone`` (and ``semantic`` when its arch is set), check they fuse, move them to ``device``.

    Args:
        backbone: the fine-grained network.
        semantic: the optional semantic network (``arch: null`` = none).
        fusion: lambda and align, read only with a semantic network.
        device: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``.

    Raises:
        ValueError: networks that cannot be fused with ``fusion.align: error``.
        sfc.models.CheckpointError: a checkpoint is missing or unreadable.
    """
    dev = resolve_device(device)
    fine, info = load_network(backbone, group="backbone")
    logger.info("Backbone %s on %s", describe_network(backbone.arch, info), dev)
    sem = None
    if semantic.enabled:
        sem, sem_info = load_network(semantic, group="semantic")
        check_fusable(fine, sem, fusion)
        sem.to(dev)
        logger.info(
            "Late fusion (SFC eq. 7): semantic %s + lambda %.3g x fine-grained, align %s",
            describe_network(str(semantic.arch), sem_info), fusion.lam, fusion.align,
        )
    return Networks(fine.to(dev), sem, fusion.lam, fusion.align, dev)


def load_benchmark_networks(
    settings: VideoBenchmarkConfig,
    backbone: BackboneConfig,
    semantic: SemanticConfig,
    fusion: FusionConfig,
    propagation: PropagationConfig,
    device: str,
) -> tuple[Networks, PropagationConfig]:
    """The networks and propagation settings of a benchmark with per-benchmark settings (JHMDB, VIP).

    With ``settings: paper`` the benchmark's own values apply (SFC Table A.1 for one network, Table A.2,
    lambda included, for two); with ``settings: shared`` the ``propagation`` and ``fusion`` groups
    do (as ``-e fusion_best`` sets them).
    """
    chosen, lam = settings.resolve(semantic.enabled, propagation, fusion)
    networks = load_networks(backbone, semantic, dataclasses.replace(fusion, lam=lam), device)
    logger.info(
        "%s propagation (%s settings): top-k %d, temperature %g, r' %g, m %d%s",
        settings.GROUP, settings.settings, chosen.topk, chosen.temperature, chosen.radius, chosen.context,
        f", lambda {lam:g}" if semantic.enabled else "",
    )
    return networks, chosen


def feature_batch_size(batch_size: int | None, device: torch.device) -> int:
    """Frames per forward pass: ``batch_size``, or by default 4 on CUDA and 1 on the CPU.

    On the CPU batching does not speed inference up, and one 480 x 854 frame at a time keeps a fused
    ResNet-50 + ResNet-18 extraction at ~250 MiB of activations instead of ~690 MiB for 4 (measured
    2026-12-01, 2 cores: 2.6 vs 2.9 s/frame).
    """
    if batch_size is not None:
        return batch_size
    return 4 if torch.device(device).type == "cuda" else 1


def iter_frame_features(
    networks: Networks,
    frames: Iterable[np.ndarray],
    *,
    scale: float = 1.0,
    size: tuple[int, int] | None = None,
    batch_size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Per-frame features of a stream of frames: (C, h, w), unit L2 norm, on ``networks.device``.

    With a semantic network, each frame's features are ``late_fusion(semantic, fine, lam)`` (SFC
    eq. 7); frames are decoded once and buffered at most one batch between the two networks.

    Args:
        networks: from :func:`load_networks`.
        frames: (H, W, 3) uint8 RGB frames, first frame first.
        scale: input resize factor before the networks (1.0 = native resolution; DAVIS).
        size: instead, a fixed (H', W') input size, aspect not kept (JHMDB 320 x 320, VIP 560 x 560,
            as the official protocol); None = use ``scale``.
        batch_size: frames per forward pass of each network (None: :func:`feature_batch_size`).
    """
    from sfc.models.backbones import iter_features  # torch-heavy

    kwargs = {
        "batch_size": feature_batch_size(batch_size, networks.device), "device": networks.device,
        "scale": scale, "size": size, "output_device": networks.device,
    }
    if networks.semantic is None:
        yield from iter_features(networks.fine, frames, **kwargs)
        return
    frames_fine, frames_semantic = itertools.tee(frames)
    fine = iter_features(networks.fine, frames_fine, **kwargs)
    semantic = iter_features(networks.semantic, frames_semantic, **kwargs)
    for f, s in zip(fine, semantic, strict=True):
        yield late_fusion(s, f, networks.lam, align=networks.align)


def network_feature_maps(
    networks: Networks,
    frames: Sequence[np.ndarray],
    *,
    scale: float = 1.0,
    size: tuple[int, int] | None = None,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """Features of a few frames from each network on its own and, with two networks, fused (for figures).

    The same features :func:`iter_frame_features` computes, kept apart per network so that each can
    be shown (e.g. correspondence maps, SFC Fig. 5).

    Args:
        networks: from :func:`load_networks`.
        frames: T (H, W, 3) uint8 RGB frames (a handful: all of them are held in memory).
        scale: input resize factor before the networks (DAVIS: ``davis.scale``).
        size: instead, a fixed (H', W') input size (JHMDB, VIP); None = use ``scale``.
        batch_size: frames per forward pass (None: :func:`feature_batch_size`).

    Returns:
        On the CPU, unit L2 norm over channels: ``{"FC": (T, C, h, w)}`` for the fine-grained network;
        with a semantic network also ``"semantic"``: (T, Cs, hs, ws) on its own grid, and ``"fused"``:
        (T, Cs + C, h, w), ``late_fusion(semantic, FC, lam, align)`` (SFC eq. 7). Keys in this order:
        ``semantic``, ``FC``, ``fused``.
    """
    from sfc.models.backbones import iter_features  # torch-heavy

    frames = list(frames)
    if not frames:
        raise ValueError("expected at least one frame, found none")
    kwargs = {
        "batch_size": feature_batch_size(batch_size, networks.device), "device": networks.device,
        "scale": scale, "size": size, "output_device": "cpu",
    }
    fine = torch.stack(list(iter_features(networks.fine, frames, **kwargs)))
    if networks.semantic is None:
        return {"FC": fine}
    semantic = torch.stack(list(iter_features(networks.semantic, frames, **kwargs)))
    fused = late_fusion(semantic, fine, networks.lam, align=networks.align)
    return {"semantic": semantic, "FC": fine, "fused": fused}


def propagate_labels(
    features: Iterable[torch.Tensor], first_labels: torch.Tensor, propagation: PropagationConfig
) -> Iterator[torch.Tensor]:
    """Propagate first-frame labels through per-frame features (CRW/SFC protocol).

    Labels at image resolution are resized bilinearly to the first frame's feature grid (as the
    official code); labels already on that grid (JHMDB's joint maps are drawn there) are used as
    they are. They are then propagated frame by frame; memory is bounded by the context window, not
    the video length.

    Args:
        features: per-frame (C, h, w) L2-normalised features, frame 0 first.
        first_labels: (H, W, K) float labels of frame 0, at image resolution or on the (h, w) grid
            (one-hot masks, part maps, joint heatmaps).
        propagation: top-k, temperature, r' and m.

    Yields:
        (h, w, K) soft labels on the features' grid and device, frame 0 first (its labels resized).
    """
    it = iter(features)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("no frames to propagate") from None
    h, w = (int(n) for n in first.shape[-2:])
    if tuple(first_labels.shape[:2]) == (h, w):
        labels0 = first_labels.to(device=first.device, dtype=torch.float32)
    else:
        labels0 = downsample_labels(first_labels, (h, w)).to(first.device)
    yield from iter_propagate(
        itertools.chain([first], it),
        labels0,
        topk=propagation.topk,
        temperature=propagation.temperature,
        radius=propagation.radius,
        context=propagation.context,
    )
