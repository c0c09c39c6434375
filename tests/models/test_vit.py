"""Tests of the DINO-layout ViT backbone and of its checkpoint layouts (``dino``, ``dino_teacher``).

Checkpoints are tiny networks written with the key names of facebookresearch/dino: a released
backbone is a plain state dict (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.<i>.*``,
``norm.*``); a training checkpoint holds ``student`` / ``teacher`` with ``backbone.`` (or, from DDP,
``module.backbone.``) prefixes and a ``head.*`` projection head.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sfc.models import (
    ARCHS,
    LAYOUT_SPECS,
    LAYOUTS,
    VIT_CONFIGS,
    CheckpointError,
    VisionTransformer,
    ViTConfig,
    arch_family,
    build_backbone,
    build_vit,
    extract_features,
    feature_size,
    iter_features,
    load_backbone,
)

TINY = ViTConfig("vit_test_p4", patch_size=4, embed_dim=16, depth=2, num_heads=2, img_size=16)  # 4x4 grid
State = dict[str, torch.Tensor]


def _save(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _source_state(seed: int) -> State:
    """A tiny ViT's state with non-trivial LayerNorm parameters (so a wrong copy cannot pass)."""
    model = build_vit(TINY, seed=seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def tiny() -> VisionTransformer:
    """A tiny ViT (patch 4, D = 16, 2 blocks) with seeded weights, in eval mode."""
    model = VisionTransformer(TINY)
    model.load_state_dict(_source_state(1))
    return model.eval()


def _dino_keys(depth: int) -> set[str]:
    """The backbone keys of DINO's ``VisionTransformer`` (num_classes = 0: no head keys)."""
    keys = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    for i in range(depth):
        for sub in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"blocks.{i}.{sub}.weight", f"blocks.{i}.{sub}.bias"}
    return keys


# ------------------------------------------------------------------------------------ reference


def _dino_interpolate_pos_encoding(pos_embed: torch.Tensor, npatch: int, w: int, h: int, patch: int) -> torch.Tensor:
    """facebookresearch/dino ``VisionTransformer.interpolate_pos_encoding`` (its ``w`` is the height)."""
    N = pos_embed.shape[1] - 1
    if npatch == N and w == h:
        return pos_embed
    class_pos_embed = pos_embed[:, 0]
    patch_pos_embed = pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0 = w // patch
    h0 = h // patch
    w0, h0 = w0 + 0.1, h0 + 0.1
    patch_pos_embed = nn.functional.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
        mode="bicubic",
    )
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def _dino_forward(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """DINO's ``prepare_tokens`` + blocks (explicit softmax attention) + ``norm``; (B, 1 + N, D)."""
    B, _, w, h = x.shape
    p = model.config.patch_size
    t = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat((model.cls_token.expand(B, -1, -1), t), dim=1)
    t = t + _dino_interpolate_pos_encoding(model.pos_embed, t.shape[1] - 1, w, h, p)
    for blk in model.blocks:
        y = blk.norm1(t)
        Bn, N, C = y.shape
        heads = model.config.num_heads
        qkv = blk.attn.qkv(y).reshape(Bn, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (C // heads) ** -0.5).softmax(dim=-1)
        t = t + blk.attn.proj((attn @ v).transpose(1, 2).reshape(Bn, N, C))
        t = t + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(t))))
    return model.norm(t)


# ------------------------------------------------------------------------------------ model


def test_named_archs_have_dino_keys_and_shapes() -> None:
    for name, patch, grid in (("vit_small_patch16", 16, 14), ("vit_small_patch8", 8, 28)):
        model = build_vit(name, seed=0)
        state = model.state_dict()
        assert set(state) == _dino_keys(12), name
        assert state["pos_embed"].shape == (1, 1 + grid * grid, 384)
        assert state["patch_embed.proj.weight"].shape == (384, 3, patch, patch)
        assert state["blocks.0.attn.qkv.weight"].shape == (1152, 384)
        assert state["blocks.0.mlp.fc1.weight"].shape == (1536, 384)
        assert model.stride == patch and model.feature_dim == 384 and model.arch == name
    assert set(VIT_CONFIGS) <= set(ARCHS) and arch_family("vit_small_patch8") == "vit"
    assert arch_family("resnet50") == "resnet" and arch_family(TINY) == "vit"


def test_forward_equals_dino_reference(tiny: VisionTransformer) -> None:
    gen = torch.Generator().manual_seed(0)
    for size in ((16, 16), (12, 20), (24, 8)):  # native grid, then interpolated non-square grids
        x = torch.randn(2, 3, *size, generator=gen)
        with torch.no_grad():
            ours = tiny(x)
            ref = _dino_forward(tiny, x)[:, 1:]
        h, w = size[0] // 4, size[1] // 4
        assert ours.shape == (2, 16, h, w)
        torch.testing.assert_close(ours, ref.transpose(1, 2).reshape(2, 16, h, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("h", "w"), [(16, 16), (13, 22), (5, 4), (1, 1), (33, 9)])
def test_output_stride_is_the_patch_size_with_ceil(tiny: VisionTransformer, h: int, w: int) -> None:
    with torch.no_grad():
        out = tiny(torch.randn(1, 3, h, w))
    assert out.shape == (1, 16, *feature_size(h, w, tiny.stride)) == (1, 16, math.ceil(h / 4), math.ceil(w / 4))


def test_input_is_zero_padded_bottom_right(tiny: VisionTransformer) -> None:
    x = torch.randn(1, 3, 13, 22)
    with torch.no_grad():
        torch.testing.assert_close(tiny(x), tiny(F.pad(x, (0, 2, 0, 3))))


def test_pos_embed_native_grid_is_the_stored_one(tiny: VisionTransformer) -> None:
    assert tiny.interpolate_pos_encoding(4, 4) is tiny.pos_embed


@pytest.mark.parametrize(("h", "w"), [(3, 7), (7, 3), (8, 8), (2, 5)])
def test_pos_embed_interpolation_non_square_keeps_orientation(h: int, w: int) -> None:
    """A stored grid that varies only along rows must still vary only along rows (and not columns)."""
    model = VisionTransformer(TINY)
    rows = torch.arange(4, dtype=torch.float32).view(4, 1, 1).expand(4, 4, 16)  # value = row index
    with torch.no_grad():
        model.pos_embed.copy_(torch.cat((torch.full((1, 16), -5.0), rows.reshape(16, 16)))[None])
        pos = model.interpolate_pos_encoding(h, w)
    assert pos.shape == (1, 1 + h * w, 16)
    assert torch.equal(pos[0, 0], torch.full((16,), -5.0))  # CLS embedding untouched
    grid = pos[0, 1:].reshape(h, w, 16)
    torch.testing.assert_close(grid, grid[:, :1].expand(h, w, 16))  # constant along columns
    assert h == 1 or (grid[-1, 0, 0] > grid[0, 0, 0])  # increasing down the rows
    ref = _dino_interpolate_pos_encoding(model.pos_embed, h * w, h * 4, w * 4, 4)
    torch.testing.assert_close(pos, ref)


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build_vit(TINY, seed=3), build_vit(TINY, seed=3), build_vit(TINY, seed=4)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.pos_embed, c.pos_embed)
    assert a.pos_embed.std().item() == pytest.approx(0.02, rel=0.3)  # DINO: trunc_normal(std=0.02)


def test_unknown_vit_arch() -> None:
    with pytest.raises(ValueError, match="vit_small_patch16"):
        build_vit("vit_base_patch16")
    with pytest.raises(ValueError, match="vit_small_patch8"):
        load_backbone("vit_base_patch16", None)
    with pytest.raises(ValueError, match="divisible"):
        ViTConfig("bad", patch_size=4, embed_dim=10, depth=1, num_heads=3)


def test_feature_extraction_with_a_vit(tiny: VisionTransformer) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 18, 30, 3), dtype=np.uint8)
    feats = extract_features(tiny, frames, batch_size=2, device="cpu")
    assert feats.shape == (3, 16, *feature_size(18, 30, tiny.stride)) == (3, 16, 5, 8)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3, 5, 8))
    streamed = torch.stack(list(iter_features(tiny, iter(frames), batch_size=3, device="cpu")))
    torch.testing.assert_close(streamed, feats)


def test_davis_grid_of_vit_s8_matches_the_resnets() -> None:
    assert feature_size(480, 854, VIT_CONFIGS["vit_small_patch8"].patch_size) == feature_size(480, 854) == (60, 107)
    assert feature_size(480, 854, VIT_CONFIGS["vit_small_patch16"].patch_size) == (30, 54)


# ------------------------------------------------------------------------------------ checkpoints


def _assert_holds(model: nn.Module, state: State) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_every_vit_layout_is_tested_here() -> None:
    assert {name for name in LAYOUTS if LAYOUT_SPECS[name].family == "vit"} == {"dino", "dino_teacher"}


def test_plain_dino_checkpoint_loads(tmp_path: Path) -> None:
    src = _source_state(7)
    model, info = load_backbone(TINY, _save(src, tmp_path / "dino_tiny_pretrain.pth"), seed=0)
    assert isinstance(model, VisionTransformer) and not model.training
    _assert_holds(model, src)
    assert info.layout == "dino" and info.arch == TINY.name and info.n_loaded_tensors == len(src)
    assert info.n_ignored_keys == 0 and info.sha256 is not None


def test_plain_dino_checkpoint_ignores_a_head(tmp_path: Path) -> None:
    src = _source_state(7)
    obj = {**src, "head.weight": torch.zeros(10, 16), "head.bias": torch.zeros(10)}
    model, info = load_backbone(TINY, _save(obj, tmp_path / "with_head.pth"))
    _assert_holds(model, src)
    assert info.n_ignored_keys == 2


@pytest.mark.parametrize("prefix", ["backbone.", "module.backbone."])
def test_teacher_of_a_dino_training_checkpoint_loads(tmp_path: Path, prefix: str) -> None:
    teacher, student = _source_state(1), _source_state(2)
    head = {"head.mlp.0.weight": torch.zeros(8, 16), "head.last_layer.weight_g": torch.ones(32, 1)}
    obj = {
        "student": {f"module.backbone.{k}": v for k, v in student.items()}
        | {f"module.{k}": v for k, v in head.items()},
        "teacher": {f"{prefix}{k}": v for k, v in teacher.items()}
        | {(f"module.{k}" if prefix.startswith("module.") else k): v for k, v in head.items()},
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_small", patch_size=16),
        "dino_loss": {"center": torch.zeros(1, 32)},
    }
    model, info = load_backbone(TINY, _save(obj, tmp_path / "checkpoint.pth"))
    _assert_holds(model, teacher)  # the teacher, not the student
    assert info.layout == "dino_teacher" and info.metadata == {"epoch": 100}
    assert info.n_loaded_tensors == len(teacher) and info.n_ignored_keys == len(head)


def test_missing_key_is_listed_with_file_and_layout(tmp_path: Path) -> None:
    src = _source_state(7)
    del src["blocks.1.mlp.fc2.weight"]
    path = _save(src, tmp_path / "broken_dino.pth")
    with pytest.raises(CheckpointError) as err:
        load_backbone(TINY, path)
    msg = str(err.value)
    assert "broken_dino.pth" in msg and "'dino'" in msg and "missing keys (1)" in msg
    assert "blocks.1.mlp.fc2.weight" in msg


def test_unexpected_key_in_teacher_is_an_error(tmp_path: Path) -> None:
    obj = {"teacher": {f"module.backbone.{k}": v for k, v in _source_state(1).items()}}
    obj["teacher"]["module.backbone.blocks.0.ls1.gamma"] = torch.ones(16)  # a layer-scale DINO ViT-S lacks
    with pytest.raises(CheckpointError) as err:
        load_backbone(TINY, _save(obj, tmp_path / "ckpt.pth"))
    msg = str(err.value)
    assert "'dino_teacher'" in msg and "unexpected keys (1): 'backbone.blocks.0.ls1.gamma'" in msg
    assert "after stripping 'module.'" in msg


def test_tiny_checkpoint_for_vit_s16_is_a_clear_error(tmp_path: Path) -> None:
    path = _save(_source_state(7), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError) as err:
        load_backbone("vit_small_patch16", path)
    msg = str(err.value)
    assert "tiny.pth" in msg and "shape mismatches" in msg and "missing keys" in msg
    assert "looks like a ViT with patch 4, dim 16, depth 2, 4x4 position grid" in msg


def test_vit_s8_checkpoint_for_vit_s16_names_the_arch(tmp_path: Path) -> None:
    path = _save(build_vit("vit_small_patch8", seed=0).state_dict(), tmp_path / "dino_deitsmall8_pretrain.pth")
    with pytest.raises(CheckpointError, match=r"\(vit_small_patch8\); arch='vit_small_patch16'"):
        load_backbone("vit_small_patch16", path)


def test_families_do_not_mix(tmp_path: Path) -> None:
    resnet = _save(build_backbone("resnet18", seed=0).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"r18.pth: layout 'torchvision' holds a ResNet.*arch='vit_test_p4'"):
        load_backbone(TINY, resnet)
    dino = _save(_source_state(1), tmp_path / "dino.pth")
    with pytest.raises(CheckpointError, match=r"dino.pth: layout 'dino' holds a ViT.*arch='resnet18'"):
        load_backbone("resnet18", dino)


def test_unknown_layout_lists_the_vit_layouts(tmp_path: Path) -> None:
    obj = {"teacher": {"encoder.blocks.0.weight": torch.zeros(1)}}
    with pytest.raises(CheckpointError) as err:
        load_backbone(TINY, _save(obj, tmp_path / "mystery.pth"))
    msg = str(err.value)
    assert "unknown checkpoint layout" in msg and "dino_teacher" in msg and "['teacher'] keys" in msg
