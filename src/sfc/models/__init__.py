"""Backbones, dense feature extraction and checkpoint loading for SFC.

``build_backbone`` / ``load_backbone`` give stride-8 ResNet-18/50 encoders (layer3 stride 1, layer4
removed), ``load_backbone`` / ``build_vit`` also DINO ViT-S/16 and ViT-S/8 patch-token encoders, and ``extract_features`` / ``iter_features`` turn uint8 RGB frames into L2-normalised feature
maps with the official test-time preprocessing; ``FineGrained`` is the FC training network. Plain
PyTorch: no Kedro or MLflow imports.
"""

from sfc.models.backbones import (
    FEATURE_DIMS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYER4_DIMS,
    STRIDE,
    ResNetBackbone,
    build_backbone,
    extract_features,
    feature_size,
    iter_features,
    scaled_size,
    set_padding_mode,
)
from sfc.models.checkpoints import (
    ARCHS,
    LAYOUT_SPECS,
    LAYOUTS,
    NATIVE_FORMAT,
    CheckpointError,
    CheckpointInfo,
    CheckpointNotFoundError,
    LayoutSpec,
    arch_family,
    detect_layout,
    file_sha256,
    load_backbone,
    make_native_checkpoint,
    read_checkpoint,
)
from sfc.models.fc import ConvMLP2d, FineGrained, update_momentum
from sfc.models.vit import VIT_CONFIGS, VisionTransformer, ViTConfig, build_vit

__all__ = [
    "ARCHS",
    "FEATURE_DIMS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYER4_DIMS",
    "LAYOUTS",
    "LAYOUT_SPECS",
    "NATIVE_FORMAT",
    "STRIDE",
    "VIT_CONFIGS",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "ConvMLP2d",
    "FineGrained",
    "LayoutSpec",
    "ResNetBackbone",
    "ViTConfig",
    "VisionTransformer",
    "arch_family",
    "build_backbone",
    "build_vit",
    "detect_layout",
    "extract_features",
    "feature_size",
    "file_sha256",
    "iter_features",
    "load_backbone",
    "make_native_checkpoint",
    "read_checkpoint",
    "scaled_size",
    "set_padding_mode",
    "update_momentum",
]
