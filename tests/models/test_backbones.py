"""Tests of the stride-8 ResNet backbones and of dense feature extraction."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sfc.models import (
    FEATURE_DIMS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRIDE,
    ResNetBackbone,
    build_backbone,
    extract_features,
    feature_size,
    iter_features,
    scaled_size,
    set_padding_mode,
)


@pytest.fixture(scope="module")
def r18() -> ResNetBackbone:
    """One seeded ResNet-18 backbone in eval mode, shared by the module (construction is the slow part)."""
    return build_backbone("resnet18", seed=0).eval()


@pytest.fixture(scope="module")
def r50() -> ResNetBackbone:
    """One seeded ResNet-50 backbone in eval mode."""
    return build_backbone("resnet50", seed=0).eval()


def _video(t: int = 5, h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 random frames."""
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _reference_features(model: nn.Module, video: np.ndarray) -> torch.Tensor:
    """The official preprocessing written out by hand: /255, ImageNet mean/std, network, L2 over C."""
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return F.normalize(model.eval()(x), dim=1)


# ----------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(("h", "w"), [(1, 1), (8, 8), (9, 17), (33, 47), (64, 100), (255, 257), (480, 854)])
def test_resnet18_output_size_is_ceil_h_over_8(r18: ResNetBackbone, h: int, w: int) -> None:
    with torch.no_grad():
        out = r18(torch.zeros(1, 3, h, w))
    assert out.shape == (1, FEATURE_DIMS["resnet18"], math.ceil(h / 8), math.ceil(w / 8))
    assert feature_size(h, w) == (math.ceil(h / 8), math.ceil(w / 8))


def test_davis_frame_size_gives_60x107() -> None:
    assert feature_size(480, 854) == (60, 107)
    assert STRIDE == 8


@pytest.mark.parametrize(("h", "w"), [(17, 23), (64, 64)])
def test_resnet50_output_size_and_channels(r50: ResNetBackbone, h: int, w: int) -> None:
    with torch.no_grad():
        out = r50(torch.zeros(2, 3, h, w))
    assert out.shape == (2, 1024, *feature_size(h, w))
    assert r50.feature_dim == FEATURE_DIMS["resnet50"] == 1024


def test_keep_layer4_keeps_stride_8_with_layer4_channels() -> None:
    model = build_backbone("resnet18", keep_layer4=True).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 40))
    assert out.shape == (1, 512, 4, 5)
    assert model.feature_dim == 512
    assert all(m.stride == (1, 1) for m in model.layer4.modules() if isinstance(m, nn.Conv2d))


# ------------------------------------------------------------------------------------------ surgery


@pytest.mark.parametrize(
    ("arch", "changed"),
    [
        ("resnet18", ["layer3.0.conv1", "layer3.0.downsample.0"]),
        ("resnet50", ["layer3.0.conv2", "layer3.0.downsample.0"]),
    ],
)
def test_layer3_strides_are_one_without_dilation(
    request: pytest.FixtureRequest, arch: str, changed: list[str]
) -> None:
    model: ResNetBackbone = request.getfixturevalue("r18" if arch == "resnet18" else "r50")
    modules = dict(model.named_modules())
    for name in changed:  # the convs the official surgery changes from stride 2
        assert modules[name].stride == (1, 1)
    for name, m in model.layer3.named_modules():
        if isinstance(m, nn.Conv2d):
            assert m.stride == (1, 1), name
            assert m.dilation == (1, 1), name
    # layer2 keeps its stride 2 (output stride 8 = 2 stem * 2 pool * 2 layer2).
    assert model.layer2[0].downsample[0].stride == (2, 2)


def test_layer4_avgpool_fc_removed(r18: ResNetBackbone) -> None:
    assert r18.layer4 is None
    assert not hasattr(r18, "fc") and not hasattr(r18, "avgpool")
    keys = r18.state_dict().keys()
    assert not any(k.startswith(("layer4.", "fc.")) for k in keys)
    assert "conv1.weight" in keys and "layer3.1.bn2.running_var" in keys


def test_unknown_arch_is_rejected() -> None:
    with pytest.raises(ValueError, match="resnet34"):
        build_backbone("resnet34")


def test_set_padding_mode_reflect_touches_only_padded_convs() -> None:
    model = build_backbone("resnet18", padding_mode="reflect")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for m in convs:
        expected = "reflect" if sum(m.padding) > 0 else "zeros"
        assert m.padding_mode == expected
    assert model.conv1.padding_mode == "reflect"
    assert model.layer3[0].downsample[0].padding_mode == "zeros"  # 1x1, no padding
    assert set_padding_mode(model, "zeros") == sum(sum(m.padding) > 0 for m in convs)
    with pytest.raises(ValueError):
        set_padding_mode(model, "circular")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ init


def test_random_init_is_deterministic_in_seed_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_backbone("resnet18", seed=0).state_dict()
    b = build_backbone("resnet18", seed=0).state_dict()
    c = build_backbone("resnet18", seed=1).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layer2.0.conv1.weight"], c["layer2.0.conv1.weight"])


def test_random_init_zeroes_last_bn_gamma_like_official_resnet() -> None:
    model = build_backbone("resnet18", seed=0)
    assert all(torch.all(block.bn2.weight == 0) for layer in (model.layer1, model.layer3) for block in layer)
    plain = build_backbone("resnet18", seed=0, zero_init_residual=False)
    assert torch.all(plain.layer1[0].bn2.weight == 1)


# -------------------------------------------------------------------------------- feature extraction


def test_extract_features_matches_official_preprocessing_and_unit_norm(r18: ResNetBackbone) -> None:
    video = _video()
    feats = extract_features(r18, video, batch_size=2, device="cpu")
    assert feats.shape == (5, 256, 5, 7)
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(5, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(feats, _reference_features(r18, video), atol=1e-5, rtol=1e-4)


def test_extract_features_is_batch_invariant_and_accepts_all_input_kinds(r18: ResNetBackbone) -> None:
    video = _video(t=7)
    ref = extract_features(r18, video, batch_size=1, device="cpu")
    for bs in (3, 8):
        torch.testing.assert_close(
            extract_features(r18, video, batch_size=bs, device="cpu"), ref, atol=1e-5, rtol=1e-4
        )
    torch.testing.assert_close(
        extract_features(r18, torch.from_numpy(video), device="cpu"), ref, atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        extract_features(r18, (f for f in video), batch_size=4, device="cpu"), ref, atol=1e-5, rtol=1e-4
    )
    streamed = torch.stack(list(iter_features(r18, list(video), batch_size=3, device="cpu")))
    torch.testing.assert_close(streamed, ref, atol=1e-5, rtol=1e-4)


def test_extraction_restores_training_mode() -> None:
    model = build_backbone("resnet18", seed=0)
    assert model.training
    extract_features(model, _video(t=2, h=16, w=16), device="cpu")
    assert model.training
    list(iter_features(model, _video(t=2, h=16, w=16), device="cpu"))
    assert model.training


def test_iter_features_is_lazy(r18: ResNetBackbone) -> None:
    frame = _video(t=1, h=16, w=24)[0]

    def endless() -> Iterator[np.ndarray]:
        while True:
            yield frame

    first = list(itertools.islice(iter_features(r18, endless(), batch_size=2, device="cpu"), 3))
    assert [f.shape for f in first] == [(256, 2, 3)] * 3


def test_scale_resizes_before_the_network(r18: ResNetBackbone) -> None:
    video = _video(t=3, h=64, w=96)
    feats = extract_features(r18, video, scale=0.5, device="cpu")
    assert scaled_size(64, 96, 0.5) == (32, 48)
    assert feats.shape == (3, 256, 4, 6)
    # Same as resizing the [0, 1] frames by hand (bilinear, antialias) and normalising afterwards.
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(32, 48), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = F.normalize(r18(x), dim=1)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-4)
    assert scaled_size(480, 854, 0.5) == (240, 427)
    with pytest.raises(ValueError):
        scaled_size(10, 10, 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 16, 16, 3), dtype=np.float32),
        np.zeros((2, 16, 16), dtype=np.uint8),
        np.zeros((2, 16, 16, 4), dtype=np.uint8),
    ],
)
def test_extract_features_rejects_non_uint8_rgb(r18: ResNetBackbone, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        extract_features(r18, bad, device="cpu")


def test_extract_features_rejects_bad_frames_in_iterables(r18: ResNetBackbone) -> None:
    with pytest.raises(ValueError, match="frame 1"):
        extract_features(r18, [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8)], device="cpu")
    with pytest.raises(ValueError, match="no frames"):
        extract_features(r18, [], device="cpu")


def test_iter_features_does_not_leak_no_grad_to_the_caller() -> None:
    """A suspended feature generator must leave gradients enabled for the caller (regression)."""
    model = build_backbone("resnet18", seed=0)
    frames = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    gen = iter_features(model, frames, batch_size=1, device="cpu")
    next(gen)
    assert torch.is_grad_enabled()
    gen.close()
    assert torch.is_grad_enabled()
