"""A plain Vision Transformer with DINO's parameter layout, used as a dense (patch-token) backbone.

Beyond the paper: SFC's semantic network is a ResNet-50; this module lets a self-supervised DINO ViT
play that role. The module tree reproduces ``vision_transformer.py`` of facebookresearch/dino, so its
state-dict keys are DINO's:

* ``cls_token`` (1, 1, D), ``pos_embed`` (1, 1 + N, D) with N = (img_size / p)^2 (224 / 16 -> 14 x 14,
  224 / 8 -> 28 x 28), ``patch_embed.proj.{weight,bias}`` (D, 3, p, p);
* ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv`` (with bias), ``blocks.{i}.attn.proj``,
  ``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1``, ``blocks.{i}.mlp.fc2`` (pre-norm blocks, GELU MLP of
  ratio 4, LayerNorm eps 1e-6);
* ``norm`` (final LayerNorm). DINO's backbone head is ``nn.Identity`` (no keys).

ViT-S: D = 384, 12 blocks, 6 heads; patch 16 (``vit_small_patch16``, DINO ``dino_deitsmall16``) or 8
(``vit_small_patch8``, ``dino_deitsmall8``). :class:`ViTConfig` also describes tiny test networks.

Dense output (:meth:`VisionTransformer.forward`): the patch tokens of the last block after the final
norm (as DINO's ``get_intermediate_layers(x, n=1)`` used by its video-segmentation evaluation), CLS
token dropped, as a (B, D, h, w) map of stride p.

Input sizes: the image is zero-padded at the bottom and right to a multiple of p (after ImageNet
normalisation, so the padding is the mean colour), giving ``ceil(H / p) x ceil(W / p)`` tokens, the
same rounding as the stride-8 ResNets (480 x 854 -> 30 x 54 at p = 16, 60 x 107 at p = 8). DINO
itself crops instead (its patch convolution drops the remainder). Positional embeddings are
interpolated to the token grid exactly as DINO's ``interpolate_pos_encoding`` does (bicubic,
``scale_factor = (h + 0.1) / sqrt(N), (w + 0.1) / sqrt(N)``), so features equal DINO's for inputs
whose sides are multiples of p.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a DINO-layout ViT.

    Attributes:
        name: architecture name (reported in logs and :class:`~sfc.models.checkpoints.CheckpointInfo`).
        patch_size: p, also the output stride.
        embed_dim: D, channels of the output map.
        depth: number of transformer blocks.
        num_heads: attention heads (D must be divisible by it).
        mlp_ratio: hidden width of the MLP / D.
        img_size: training resolution that fixes the stored ``pos_embed`` grid (img_size / p per side).
        qkv_bias: bias in the qkv projection (True for every DINO ViT).
        ln_eps: LayerNorm epsilon (DINO: 1e-6).
    """

    name: str
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    img_size: int = 224
    qkv_bias: bool = True
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{self.name}: embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        if self.img_size % self.patch_size:
            raise ValueError(f"{self.name}: img_size {self.img_size} not a multiple of patch {self.patch_size}")

    @property
    def grid(self) -> int:
        """Side of the stored positional-embedding grid."""
        return self.img_size // self.patch_size


VIT_CONFIGS: dict[str, ViTConfig] = {
    "vit_small_patch16": ViTConfig("vit_small_patch16", patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_small_patch8": ViTConfig("vit_small_patch8", patch_size=8, embed_dim=384, depth=12, num_heads=6),
}
"""Named ViT architectures (DINO ViT-S/16 and ViT-S/8)."""


def resolve_vit_config(arch: str | ViTConfig) -> ViTConfig:
    """A :class:`ViTConfig` from a name of :data:`VIT_CONFIGS` or a config (returned as is)."""
    if isinstance(arch, ViTConfig):
        return arch
    if arch not in VIT_CONFIGS:
        raise ValueError(f"unknown ViT arch {arch!r}; supported: {sorted(VIT_CONFIGS)}")
    return VIT_CONFIGS[arch]


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> D channels (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) with H, W multiples of p -> (B, D, H / p, W / p)."""
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention (``attn.qkv``, ``attn.proj``), softmax(q k^T / sqrt(d)) v."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        B, N, D = x.shape
        # DINO's split: qkv -> (3, B, heads, N, D / heads).
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale 1/sqrt(head dim), as DINO
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    """``mlp.fc1`` -> GELU -> ``mlp.fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.ln_eps)
        self.attn = Attention(dim, config.num_heads, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=config.ln_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """DINO-layout ViT returning its last-layer patch tokens as a dense map.

    Attributes:
        arch: config name.
        config: the :class:`ViTConfig`.
        feature_dim: D, channels of the output.
        stride: output stride (= patch size).
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.arch = config.name
        self.feature_dim = config.embed_dim
        self.stride = config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid**2, config.embed_dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)

    def interpolate_pos_encoding(self, h: int, w: int) -> torch.Tensor:
        """Positional embeddings for an h x w token grid (CLS first): (1, 1 + h * w, D).

        DINO's ``interpolate_pos_encoding``, verbatim in effect: bicubic resampling of the stored
        sqrt(N) x sqrt(N) grid with ``scale_factor`` (h + 0.1) / sqrt(N), (w + 0.1) / sqrt(N) (the 0.1
        guards against the floor of the output size rounding down); the stored grid itself when
        h = w = sqrt(N).
        """
        n = self.pos_embed.shape[1] - 1
        if h * w == n and h == w:
            return self.pos_embed
        side = int(math.sqrt(n))
        dim = self.pos_embed.shape[-1]
        grid = self.pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, scale_factor=((h + 0.1) / math.sqrt(n), (w + 0.1) / math.sqrt(n)), mode="bicubic"
        )
        if tuple(grid.shape[-2:]) != (h, w):  # DINO asserts the same
            raise RuntimeError(f"positional embedding interpolated to {tuple(grid.shape[-2:])}, wanted {(h, w)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)
        return torch.cat((self.pos_embed[:, :1], grid), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense patch features.

        Args:
            x: (B, 3, H, W) float, ImageNet-normalised RGB images, any H, W.

        Returns:
            (B, D, ceil(H / p), ceil(W / p)) patch tokens after the final norm (un-normalised).
        """
        B, _, H, W = x.shape
        p = self.stride
        pad_h, pad_w = -H % p, -W % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # bottom / right, zeros = mean colour after normalisation
        tokens = self.patch_embed(x)
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = torch.cat((self.cls_token.expand(B, -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(h, w)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 1:].transpose(1, 2).reshape(B, self.feature_dim, h, w)


def _init_weights(model: VisionTransformer) -> None:
    """DINO's init: truncated normal (std 0.02) for ``pos_embed``, ``cls_token`` and every Linear
    weight, zero biases, LayerNorms at (1, 0); the patch conv keeps PyTorch's default init."""
    nn.init.trunc_normal_(model.pos_embed, std=0.02)
    nn.init.trunc_normal_(model.cls_token, std=0.02)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_vit(arch: str | ViTConfig, *, seed: int | None = 0) -> VisionTransformer:
    """Build a randomly initialised DINO-layout ViT (no weights are ever downloaded).

    Args:
        arch: a name of :data:`VIT_CONFIGS` or a :class:`ViTConfig` (e.g. a tiny test network).
        seed: seed of a private RNG stream for the init (the global torch RNG is left alone), or None
            to draw from the global RNG.

    Returns:
        A :class:`VisionTransformer` in training mode, on CPU.
    """
    config = resolve_vit_config(arch)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = VisionTransformer(config)
        _init_weights(model)
    logger.debug("Built %s (seed %s)", config.name, seed)
    return model
