"""Tests of checkpoint layout detection and strict backbone loading.

Every layout is rebuilt in a tmp file with the key names the official training code of each method
writes (prefixes, heads, target/momentum encoders, top-level metadata), from a seeded torchvision
state dict, and the loaded backbone must hold exactly the source tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from sfc.models import (
    LAYOUT_SPECS,
    LAYOUTS,
    CheckpointError,
    CheckpointNotFoundError,
    build_backbone,
    detect_layout,
    load_backbone,
    make_native_checkpoint,
)

State = dict[str, torch.Tensor]


def _torchvision_state(arch: str, seed: int) -> State:
    """Full torchvision state dict (with layer4 and fc) with non-trivial BN parameters and statistics."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = getattr(torchvision.models, arch)(weights=None)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_()
                    m.running_mean.normal_()
                    m.running_var.uniform_(0.5, 2.0)
                    m.num_batches_tracked.fill_(7)
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def src18() -> State:
    return _torchvision_state("resnet18", seed=123)


@pytest.fixture(scope="module")
def r50_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision ResNet-50 state dict on disk (~100 MB: written once per module)."""
    path = tmp_path_factory.mktemp("r50") / "resnet50_tv.pth"
    torch.save(_torchvision_state("resnet50", seed=5), path)
    return path


# ---------------------------------------------------------------------------- official layouts


def _bb(state: State, prefix: str, *, layer4: bool = True, fc: bool = False) -> State:
    """Backbone tensors of a torchvision state dict under ``prefix`` (optionally without layer4 / fc)."""
    out = {}
    for k, v in state.items():
        if (k.startswith("layer4.") and not layer4) or (k.startswith("fc.") and not fc):
            continue
        out[prefix + k] = v
    return out


def _placeholders(state: State, prefix: str) -> State:
    """The key names of an ignored copy (momentum / target encoder) with tiny tensors: keeps files small."""
    return {prefix + k: torch.zeros(1) for k in state}


def _bn(prefix: str, n: int) -> State:
    return {
        prefix + "weight": torch.ones(n), prefix + "bias": torch.zeros(n),
        prefix + "running_mean": torch.zeros(n), prefix + "running_var": torch.ones(n),
        prefix + "num_batches_tracked": torch.tensor(3),
    }  # fmt: skip


def _mlp2d(prefix: str, c_in: int = 512, hidden: int = 8, c_out: int = 4) -> State:
    """Keys of the official SFC / PixPro ``MLP2d`` head (small dims: these tensors are ignored)."""
    return {
        prefix + "linear1.weight": torch.randn(hidden, c_in, 1, 1), prefix + "linear1.bias": torch.randn(hidden),
        **_bn(prefix + "bn1.", hidden),
        prefix + "linear2.weight": torch.randn(c_out, hidden, 1, 1), prefix + "linear2.bias": torch.randn(c_out),
    }  # fmt: skip


_OPTIM = {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]}


def _sfc_model(src: State) -> State:
    """``FineGrained.state_dict()``: encoders built with head_type='early_return' keep layer4, no fc."""
    return {
        **_bb(src, "online_encoder."), **_placeholders(_bb(src, ""), "target_encoder."),
        **_mlp2d("online_projector."), **_mlp2d("target_projector."), **_mlp2d("predictor.", c_in=4),
    }  # fmt: skip


def _moco(src: State, v2: bool) -> dict[str, Any]:
    fc = (
        {"fc.0.weight": torch.randn(512, 512), "fc.0.bias": torch.randn(512),
         "fc.2.weight": torch.randn(128, 512), "fc.2.bias": torch.randn(128)}
        if v2 else {"fc.weight": torch.randn(128, 512), "fc.bias": torch.randn(128)}
    )  # fmt: skip
    state: State = {"module.encoder_q." + k: v for k, v in {**_bb(src, ""), **fc}.items()}
    state.update(_placeholders({**_bb(src, ""), **fc}, "module.encoder_k."))
    state["module.queue"] = torch.randn(128, 16)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": _OPTIM}


def _simsiam(src: State) -> dict[str, Any]:
    projector = {
        "fc.0.weight": torch.randn(512, 512), **_bn("fc.1.", 512), "fc.3.weight": torch.randn(512, 512),
        **_bn("fc.4.", 512), "fc.6.weight": torch.randn(16, 512), "fc.6.bias": torch.randn(16),
        "fc.7.running_mean": torch.zeros(16), "fc.7.running_var": torch.ones(16),
        "fc.7.num_batches_tracked": torch.tensor(1),
    }  # fmt: skip
    predictor = {
        "module.predictor.0.weight": torch.randn(8, 16), **_bn("module.predictor.1.", 8),
        "module.predictor.3.weight": torch.randn(16, 8), "module.predictor.3.bias": torch.randn(16),
    }  # fmt: skip
    encoder = {"module.encoder." + k: v for k, v in {**_bb(src, ""), **projector}.items()}
    return {"epoch": 100, "arch": "resnet18", "state_dict": {**encoder, **predictor}, "optimizer": _OPTIM}


def _byol(src: State) -> dict[str, Any]:
    """A solo-learn BYOL Lightning checkpoint: backbone (fc = Identity), momentum copy, heads."""
    bb = {k: v for k, v in _bb(src, "").items() if not k.startswith("fc.")}
    state: State = {"backbone." + k: v for k, v in bb.items()}
    state.update(_placeholders(bb, "momentum_backbone."))
    state.update({"projector.0.weight": torch.randn(16, 512), "momentum_projector.0.weight": torch.randn(16, 512),
                  "predictor.0.weight": torch.randn(16, 16), "classifier.weight": torch.randn(10, 512)})
    return {"epoch": 399, "global_step": 1000, "pytorch-lightning_version": "2.1.0", "state_dict": state}


def _pixpro(src: State) -> dict[str, Any]:
    model = {
        **_bb(src, "module.encoder."), **_placeholders(_bb(src, ""), "module.encoder_k."),
        **_mlp2d("module.projector."), **_mlp2d("module.projector_k."),
        "module.value_transform.weight": torch.randn(4, 4, 1, 1), "module.value_transform.bias": torch.randn(4),
    }  # fmt: skip
    # 'opt' holds a path object: not allow-listed, so this file needs the trusted (weights_only=False) path.
    opt = argparse.Namespace(arch="resnet18", output_dir=PurePosixPath("/out"))
    return {"opt": opt, "model": model, "optimizer": _OPTIM, "epoch": 400}


_CRW_QUIRK_KEYS = ("conv1.weight", "layer1.0.conv1.weight", "layer2.1.conv2.weight", "layer3.0.conv2.weight")


def _crw(src: State, quirk: bool) -> dict[str, Any]:
    # CRW's encoder is From3D(resnet) with layer4/fc/avgpool removed: 'encoder.model.<key>'.
    model: State = {}
    for k, v in _bb(src, "", layer4=False).items():
        name = k.replace(".weight", ".1.weight") if quirk and k in _CRW_QUIRK_KEYS else k
        model["encoder.model." + name] = v
    model["selfsim_fc.0.weight"] = torch.randn(128, 256)
    model["selfsim_fc.0.bias"] = torch.randn(128)
    args = argparse.Namespace(model_type="scratch", remove_layers=["layer4"], temp=0.05)
    return {"model": model, "optimizer": _OPTIM, "lr_scheduler": {"milestones": {}}, "epoch": 9, "args": args}


VARIANTS: dict[str, tuple[str, Callable[[State], Any]]] = {
    "torchvision": ("torchvision", lambda s: dict(s)),
    "torchvision_wrapped": ("torchvision", lambda s: {"state_dict": dict(s), "epoch": 90}),
    "sfc_fc": ("sfc_fc", lambda s: {
        "model": _sfc_model(s), "optimizer": _OPTIM, "epoch": 19,
        "args": argparse.Namespace(arch="resnet18", remove_stride_layers=("layer3", "layer4"), lr=1e-3),
    }),
    "sfc_native": ("sfc_native", lambda s: make_native_checkpoint(_sfc_model(s), arch="resnet18", step=1234)),
    "moco_v1": ("moco", lambda s: _moco(s, v2=False)),
    "moco_v2": ("moco", lambda s: _moco(s, v2=True)),
    "simsiam": ("simsiam", _simsiam),
    "byol": ("byol", _byol),
    "pixpro": ("pixpro", _pixpro),
    "crw": ("crw", lambda s: _crw(s, quirk=False)),
    "crw_quirk": ("crw", lambda s: _crw(s, quirk=True)),
}  # fmt: skip


def _save(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_every_layout_has_a_variant() -> None:
    resnet_layouts = {name for name in LAYOUTS if LAYOUT_SPECS[name].family == "resnet"}  # ViTs: test_vit.py
    assert {layout for layout, _ in VARIANTS.values()} == resnet_layouts


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_detect_layout(src18: State, variant: str) -> None:
    layout, make = VARIANTS[variant]
    assert detect_layout(make(src18)) == layout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_load_backbone_restores_source_weights(src18: State, tmp_path: Path, variant: str) -> None:
    layout, make = VARIANTS[variant]
    path = _save(make(src18), tmp_path / f"{variant}.pth")
    model, info = load_backbone("resnet18", path)

    loaded = model.state_dict()
    assert set(loaded) == {k for k in src18 if not k.startswith(("layer4.", "fc."))}
    for key, value in loaded.items():
        assert torch.equal(value, src18[key]), key
    assert not model.training
    assert info.layout == layout and info.arch == "resnet18" and info.path == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.n_loaded_tensors == len(loaded)
    assert info.n_ignored_keys > 0 or variant == "crw"  # CRW's only extra keys are selfsim_fc.*
    padded = [m for m in model.modules() if isinstance(m, nn.Conv2d) and sum(m.padding) > 0]
    expected_mode = "reflect" if layout == "crw" else "zeros"
    assert info.padding_mode == expected_mode
    assert all(m.padding_mode == expected_mode for m in padded)


def test_loaded_backbone_computes_the_truncated_torchvision_network(src18: State, tmp_path: Path) -> None:
    model, _ = load_backbone("resnet18", _save(src18, tmp_path / "tv.pth"))
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(src18)
    for m in net.layer3.modules():
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
    net.eval()
    x = torch.randn(2, 3, 40, 52)
    with torch.no_grad():
        ref = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
        torch.testing.assert_close(model(x), ref)


def test_trusted_fallback_only_when_needed(
    src18: State, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sfc.models.checkpoints"):
        load_backbone("resnet18", _save(VARIANTS["sfc_fc"][1](src18), tmp_path / "fc.pth"))
    assert "TRUSTED" not in caplog.text  # argparse.Namespace is allow-listed
    with caplog.at_level(logging.WARNING, logger="sfc.models.checkpoints"):
        load_backbone("resnet18", _save(_pixpro(src18), tmp_path / "pixpro.pth"))
    assert "TRUSTED" in caplog.text and "pixpro.pth" in caplog.text


def test_native_metadata_is_reported(src18: State, tmp_path: Path) -> None:
    _, info = load_backbone("resnet18", _save(VARIANTS["sfc_native"][1](src18), tmp_path / "n.pth"))
    assert info.metadata["step"] == 1234 and info.metadata["arch"] == "resnet18"
    assert info.to_dict()["layout"] == "sfc_native"


def test_missing_num_batches_tracked_is_tolerated(src18: State, tmp_path: Path) -> None:
    state = {k: v for k, v in src18.items() if not k.endswith("num_batches_tracked")}
    model, info = load_backbone("resnet18", _save(state, tmp_path / "old.pth"))
    assert torch.equal(model.state_dict()["layer1.0.bn1.running_mean"], src18["layer1.0.bn1.running_mean"])
    assert info.n_loaded_tensors == len([k for k in state if not k.startswith(("layer4.", "fc."))])


def test_resnet50_checkpoint_loads_for_resnet50(r50_file: Path) -> None:
    model, info = load_backbone("resnet50", r50_file)
    assert info.layout == "torchvision" and model.feature_dim == 1024


# ------------------------------------------------------------------------------------------- random


def test_no_checkpoint_gives_seeded_random_init() -> None:
    model, info = load_backbone("resnet18", None, seed=3)
    ref = build_backbone("resnet18", seed=3).state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    assert info.layout == "random" and info.path is None and info.sha256 is None and info.seed == 3


# ------------------------------------------------------------------------------------------- errors


def test_unknown_layout_names_file_layouts_and_keys(tmp_path: Path) -> None:
    path = _save({"weights": {"backbone.stem.weight": torch.zeros(1)}, "step": 1}, tmp_path / "mystery.pth")
    with pytest.raises(CheckpointError) as err:
        load_backbone("resnet18", path)
    msg = str(err.value)
    assert "mystery.pth" in msg and "unknown checkpoint layout" in msg
    assert all(layout in msg for layout in LAYOUTS)
    assert "'weights'" in msg and "'step'" in msg


def test_non_dict_checkpoint_is_unknown_layout() -> None:
    with pytest.raises(CheckpointError, match="list"):
        detect_layout([torch.zeros(1)], source="x.pth")


def test_resnet50_checkpoint_for_resnet18_is_a_clear_error(r50_file: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_backbone("resnet18", r50_file)
    msg = str(err.value)
    assert "resnet50_tv.pth" in msg and "looks like a resnet50" in msg and "shape mismatches" in msg
    assert "torchvision" in msg


def test_resnet18_checkpoint_for_resnet50_is_a_clear_error(src18: State, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="looks like a resnet18"):
        load_backbone("resnet50", _save(VARIANTS["moco_v2"][1](src18), tmp_path / "moco.pth"))


def test_missing_keys_are_listed_with_the_file(src18: State, tmp_path: Path) -> None:
    obj = VARIANTS["sfc_fc"][1](src18)
    del obj["model"]["online_encoder.layer2.0.conv1.weight"]
    del obj["model"]["online_encoder.bn1.running_var"]
    path = _save(obj, tmp_path / "broken_fc.pth")
    with pytest.raises(CheckpointError) as err:
        load_backbone("resnet18", path)
    msg = str(err.value)
    assert "broken_fc.pth" in msg and "'sfc_fc'" in msg and "missing keys (2)" in msg
    assert "online_encoder.layer2.0.conv1.weight" in msg and "online_encoder.bn1.running_var" in msg


def test_unexpected_and_mismatched_keys_are_errors(src18: State, tmp_path: Path) -> None:
    extra = {**src18, "layer3.0.se.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): 'layer3.0.se.weight'"):
        load_backbone("resnet18", _save(extra, tmp_path / "extra.pth"))
    bad = {**src18, "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}
    with pytest.raises(CheckpointError, match=r"layer1.0.conv1.weight: checkpoint \(64, 64, 1, 1\)"):
        load_backbone("resnet18", _save(bad, tmp_path / "bad.pth"))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "pretrained_fc.pth"
    with pytest.raises(CheckpointNotFoundError, match="pretrained_fc.pth") as err:
        load_backbone("resnet18", path)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, CheckpointError)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"hello world\nthis is a text file\n", r"starts with b'hello world\\nthis' \(text\)"),
        (b"", r"it is empty \(0 bytes\)"),
        (bytes(range(200, 256)), r"binary data of another format"),
    ],
)
def test_non_checkpoint_file_says_what_it_is(tmp_path: Path, content: bytes, what: str) -> None:
    """Never an internal message such as 'pop from empty list': the file, the format expected, what was found."""
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"weights\.pth: not a PyTorch checkpoint: torch.save writes a zip .*{what}"):
        load_backbone("resnet18", path)


def test_truncated_checkpoint_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"x": torch.zeros(100)}}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        load_backbone("resnet18", cut)
    assert str(err.value) == (
        f"{cut}: a zip archive that torch.load cannot read as a checkpoint (truncated or damaged file, or an "
        "archive written by another program)"
    )


def test_native_arch_mismatch(src18: State, tmp_path: Path) -> None:
    obj = make_native_checkpoint(_sfc_model(src18), arch="resnet50", step=1)
    with pytest.raises(CheckpointError, match="saved for arch 'resnet50'"):
        load_backbone("resnet18", _save(obj, tmp_path / "native.pth"))


def test_crw_with_both_key_forms_is_ambiguous(src18: State, tmp_path: Path) -> None:
    obj = _crw(src18, quirk=False)
    obj["model"]["encoder.model.layer1.0.conv1.1.weight"] = src18["layer1.0.conv1.weight"]
    with pytest.raises(CheckpointError, match="both"):
        load_backbone("resnet18", _save(obj, tmp_path / "crw.pth"))


def test_make_native_checkpoint_validates(src18: State) -> None:
    with pytest.raises(ValueError, match="online_encoder"):
        make_native_checkpoint(dict(src18), arch="resnet18")
    with pytest.raises(ValueError, match="reserved"):
        make_native_checkpoint(_sfc_model(src18), arch="resnet18", model=1)
    with pytest.raises(ValueError, match="arch"):
        make_native_checkpoint(_sfc_model(src18), arch="vit")


def test_unknown_arch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resnet101"):
        load_backbone("resnet101", None)
