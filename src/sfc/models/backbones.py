"""ResNet feature backbones at output stride 8 and dense, L2-normalised feature extraction.

The SFC / CRW test-time encoders are torchvision-style ResNets with this surgery (official
``ResNet.modify`` as called by SFC's ``make_encoder``):

* every convolution inside ``layer3`` gets stride 1. For a ``BasicBlock`` network (ResNet-18) this
  changes ``layer3.0.conv1`` and ``layer3.0.downsample.0``; for torchvision's ``Bottleneck`` (ResNet-50,
  "v1.5", stride on the 3x3 conv) it changes ``layer3.0.conv2`` and ``layer3.0.downsample.0``;
* no dilation is added (the receptive field simply grows less);
* ``layer4``, ``avgpool`` and ``fc`` are removed.

The result has output stride 8 with C = 256 channels (ResNet-18) or 1024 (ResNet-50).

Output size: the stem conv (7x7, stride 2, padding 3), the max-pool (3x3, stride 2, padding 1) and the
first ``layer2`` block (3x3 / 1x1 convs with stride 2) each map a side of n pixels to ceil(n / 2), and
nested ceilings of halvings compose, so an H x W input gives ``ceil(H / 8) x ceil(W / 8)`` features
(480 x 854 -> 60 x 107). :func:`feature_size` computes it.

Input convention (official test loader, ``data/vos.py``): RGB frames as float in [0, 1], normalised
with the ImageNet mean/std. :func:`extract_features` / :func:`iter_features` do that conversion from
``uint8`` frames, run the network in batches without gradients and L2-normalise every feature vector
over channels, as the official ``test_vos.py`` does before label propagation.

Those two functions work with any backbone that maps (B, 3, H, W) ImageNet-normalised images to a
(B, C, h, w) map, in particular the DINO ViTs of :mod:`sfc.models.vit` (stride = patch size, inputs
padded to a multiple of it; DINO normalises with the same ImageNet mean/std). Every backbone built
in :mod:`sfc.models` has a ``stride`` attribute; :func:`feature_size` takes it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sfc.device import resolve_device

logger = logging.getLogger(__name__)

FEATURE_DIMS: dict[str, int] = {"resnet18": 256, "resnet50": 1024}
"""Channels of the layer3 output (the features used at test time) per architecture."""

LAYER4_DIMS: dict[str, int] = {"resnet18": 512, "resnet50": 2048}
"""Channels of the layer4 output, only relevant with ``build_backbone(..., keep_layer4=True)``."""

STRIDE = 8
"""Output stride of every backbone built here."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

PaddingMode = Literal["zeros", "reflect"]

_CONSTRUCTORS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}


class ResNetBackbone(nn.Module):
    """Truncated ResNet (stem, layer1..layer3 [+ layer4]) with stride-1 ``layer3`` (and ``layer4``).

    Sub-module names are torchvision's (``conv1``, ``bn1``, ``layer1`` ...), so ``state_dict()`` keys are
    the torchvision keys minus ``layer4.*`` / ``fc.*``.

    Attributes:
        arch: ``"resnet18"`` or ``"resnet50"``.
        feature_dim: channels C of the output.
        stride: output stride (always 8).
    """

    def __init__(self, arch: str, net: torchvision.models.ResNet, *, keep_layer4: bool = False) -> None:
        """Take the stem and residual stages of ``net`` (already stride-modified).

        Args:
            arch: architecture name, stored for checks and logging.
            net: a torchvision ResNet whose ``layer3`` (and ``layer4``) strides are already 1.
            keep_layer4: keep ``layer4`` as the last stage (used by the official FC training loss).
        """
        super().__init__()
        self.arch = arch
        self.stride = STRIDE
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4: nn.Module | None = net.layer4 if keep_layer4 else None
        self.feature_dim = LAYER4_DIMS[arch] if keep_layer4 else FEATURE_DIMS[arch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute raw (un-normalised) features.

        Args:
            x: (B, 3, H, W) float, ImageNet-normalised RGB images.

        Returns:
            (B, C, ceil(H / 8), ceil(W / 8)) float features.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.layer4 is not None:
            x = self.layer4(x)
        return x


def feature_size(height: int, width: int, stride: int = STRIDE) -> tuple[int, int]:
    """Backbone output size for an ``height x width`` input: ``(ceil(H / stride), ceil(W / stride))``.

    ``stride`` is 8 for the ResNets and the patch size for a ViT (:attr:`VisionTransformer.stride`).
    """
    return math.ceil(height / stride), math.ceil(width / stride)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Frame size after the optional pre-network resize: ``(round(H * scale), round(W * scale))``.

    Python's ``round`` is used (halves round to even), e.g. 480 x 854 at 0.5 -> 240 x 427.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return max(1, round(height * scale)), max(1, round(width * scale))


def set_padding_mode(model: nn.Module, mode: PaddingMode) -> int:
    """Set ``padding_mode`` of every padded ``Conv2d`` of ``model`` (official CRW ``modify(padding=...)``).

    As in the official code only convolutions with non-zero padding are touched (the 7x7 stem conv and
    all 3x3 convs; 1x1 convs have none); the max-pool keeps its own padding.

    Args:
        model: module to modify in place.
        mode: ``"zeros"`` (torchvision default) or ``"reflect"`` (CRW).

    Returns:
        Number of convolutions changed.
    """
    if mode not in ("zeros", "reflect"):
        raise ValueError(f"padding mode must be 'zeros' or 'reflect', got {mode!r}")
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and sum(m.padding) > 0:  # type: ignore[arg-type]
            m.padding_mode = mode
            n += 1
    return n


def build_backbone(
    arch: str,
    *,
    seed: int | None = 0,
    padding_mode: PaddingMode = "zeros",
    keep_layer4: bool = False,
    zero_init_residual: bool = True,
) -> ResNetBackbone:
    """Build a randomly initialised stride-8 ResNet backbone (no weights are ever downloaded).

    The initialisation draws from a private RNG stream seeded with ``seed``, so ``seed=0`` gives the
    same weights every time without touching the global torch RNG; ``seed=None`` draws from the global
    RNG instead.

    Args:
        arch: ``"resnet18"`` or ``"resnet50"``.
        seed: seed of the random initialisation, or None to use the global RNG.
        padding_mode: ``"reflect"`` reproduces CRW's encoder; ``"zeros"`` everything else.
        keep_layer4: keep ``layer4`` (stride also set to 1, so output stride stays 8 and C becomes
            512 / 2048). The official FC *training* computes its loss on layer4 features; test time
            always drops it (default).
        zero_init_residual: zero the last BatchNorm gamma of every residual block. The official SFC
            ``resnet.py`` always does this (its convs use the same N(0, 2 / fan_out) init as
            torchvision), so True reproduces its random init; it only matters without a checkpoint.

    Returns:
        A :class:`ResNetBackbone` in training mode, on CPU.
    """
    if arch not in _CONSTRUCTORS:
        raise ValueError(f"unknown arch {arch!r}; supported: {sorted(_CONSTRUCTORS)}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = _CONSTRUCTORS[arch](weights=None, zero_init_residual=zero_init_residual)
    # Official surgery: stride 1 for every conv of layer3 (and layer4); no dilation.
    for layer in (net.layer3, net.layer4):
        for m in layer.modules():
            if isinstance(m, nn.Conv2d):
                m.stride = (1, 1)
    model = ResNetBackbone(arch, net, keep_layer4=keep_layer4)
    set_padding_mode(model, padding_mode)
    logger.debug("Built %s backbone (seed %s, padding %s, layer4 %s)", arch, seed, padding_mode, keep_layer4)
    return model


def _as_uint8_frame(frame: object, index: int) -> np.ndarray:
    """Validate one (H, W, 3) uint8 frame and return it as a writable contiguous array."""
    arr = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"frame {index}: expected an (H, W, 3) uint8 RGB array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr).copy()  # torch.from_numpy needs a writable buffer
    return arr


def _uint8_batches(
    frames: np.ndarray | torch.Tensor | Iterable[np.ndarray], batch_size: int
) -> Iterator[torch.Tensor]:
    """Yield (b, H, W, 3) uint8 tensors of at most ``batch_size`` frames, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        video = frames if isinstance(frames, torch.Tensor) else None
        if video is None:
            arr = frames if frames.flags.writeable else frames.copy()  # type: ignore[union-attr]
            video = torch.from_numpy(arr)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
            raise ValueError(
                f"expected frames as a (T, H, W, 3) uint8 array, got shape {tuple(video.shape)} "
                f"dtype {video.dtype}"
            )
        for start in range(0, video.shape[0], batch_size):
            yield video[start : start + batch_size]
        return
    buffer: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        arr = _as_uint8_frame(frame, i)
        if buffer and arr.shape != buffer[0].shape:
            # Frames of a new size start a new batch (cannot be stacked with the previous ones).
            yield torch.from_numpy(np.stack(buffer))
            buffer = []
        buffer.append(arr)
        if len(buffer) == batch_size:
            yield torch.from_numpy(np.stack(buffer))
            buffer = []
    if buffer:
        yield torch.from_numpy(np.stack(buffer))


def _features_of_batch(
    model: nn.Module, batch: torch.Tensor, device: torch.device, scale: float, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """(b, H, W, 3) uint8 -> (b, C, h, w) float32 L2-normalised features on ``device``."""
    # Move uint8 first: 4x less host-to-device traffic than float.
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None:
        # A fixed input size (JHMDB 320 x 320, VIP 560 x 560), aspect not kept: bilinear without
        # antialiasing, as the official code's cv2.resize.
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    elif scale != 1.0:
        # Resizing before or after the per-channel affine normalisation is identical (the bilinear /
        # antialias weights sum to 1), so resize the [0, 1] image.
        x = F.interpolate(
            x,
            size=scaled_size(x.shape[-2], x.shape[-1], scale),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    feats = model((x - mean) / std)
    return F.normalize(feats.float(), dim=1)


def iter_features(
    model: nn.Module,
    frames: np.ndarray | torch.Tensor | Iterable[np.ndarray],
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    scale: float = 1.0,
    size: tuple[int, int] | None = None,
    output_device: str | torch.device | None = "cpu",
) -> Iterator[torch.Tensor]:
    """Stream per-frame L2-normalised features; memory stays flat in the video length.

    Frames are consumed lazily ``batch_size`` at a time, so a generator that decodes frames from disk
    never holds more than one batch. The model is moved to ``device`` (in place) and put in eval mode
    while iterating; its previous train/eval mode is restored when the generator finishes or is closed.

    Args:
        model: a backbone taking (B, 3, H, W) ImageNet-normalised images.
        frames: (T, H, W, 3) uint8 RGB numpy array / torch tensor, or an iterable of (H, W, 3) uint8
            RGB arrays.
        batch_size: frames per forward pass.
        device: compute device; default CUDA if available, else CPU.
        scale: resize factor applied to each frame before the network (bilinear, antialiased); the
            network then sees ``round(H * scale) x round(W * scale)`` images. 1.0 = native size.
        size: instead of ``scale``, resize every frame to this (H', W') (bilinear without
            antialiasing, aspect not kept: the official JHMDB / VIP protocol). None = use ``scale``.
        output_device: where the yielded features live; None keeps them on ``device``.

    Yields:
        (C, h, w) float32 features, unit L2 norm over C at every location (h = ceil(H' / stride) for
        the resized height H', stride 8 for the ResNets). A location whose raw feature is all zero
        stays zero.
    """
    dev = resolve_device(device)
    out_dev = torch.device(output_device) if output_device is not None else dev
    was_training = model.training
    model.to(dev).eval()
    try:
        for batch in _uint8_batches(frames, batch_size):
            # no_grad only around the computation: a generator must not yield inside a grad-mode
            # context, or the caller would run with gradients disabled while it is suspended.
            with torch.no_grad():
                feats = _features_of_batch(model, batch, dev, scale, size).to(out_dev)
            yield from feats.unbind(0)
    finally:
        model.train(was_training)


def extract_features(
    model: nn.Module,
    frames: np.ndarray | torch.Tensor | Iterable[np.ndarray],
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    scale: float = 1.0,
    output_device: str | torch.device | None = "cpu",
) -> torch.Tensor:
    """Compute L2-normalised dense features of a whole video (official test-time preprocessing).

    uint8 RGB -> float / 255 -> optional resize by ``scale`` -> ImageNet mean/std -> network under
    ``torch.no_grad()`` in eval mode, ``batch_size`` frames at a time -> L2 normalisation over channels.
    Results do not depend on ``batch_size`` (eval-mode BatchNorm uses running statistics).

    Args:
        model: a backbone taking (B, 3, H, W) ImageNet-normalised images (moved to ``device`` in place).
        frames: (T, H, W, 3) uint8 RGB numpy array / torch tensor, or an iterable of (H, W, 3) uint8
            RGB arrays of one common size.
        batch_size: frames per forward pass.
        device: compute device; default CUDA if available, else CPU.
        scale: pre-network resize factor, see :func:`iter_features`.
        output_device: device of the returned tensor; None keeps it on ``device``.

    Returns:
        (T, C, h, w) float32 features with unit L2 norm over C at every location, h x w =
        ``feature_size(*scaled_size(H, W, scale), model.stride)``.
    """
    dev = resolve_device(device)
    out_dev = torch.device(output_device) if output_device is not None else dev
    chunks: list[torch.Tensor] = []
    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.no_grad():
            for batch in _uint8_batches(frames, batch_size):
                chunks.append(_features_of_batch(model, batch, dev, scale).to(out_dev))
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("extract_features got no frames")
    shapes = {tuple(c.shape[1:]) for c in chunks}
    if len(shapes) > 1:
        raise ValueError(
            f"frames of different sizes give features of shapes {sorted(shapes)}; "
            "use iter_features for mixed-size frames"
        )
    return torch.cat(chunks, dim=0)
