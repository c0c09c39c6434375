"""Tests of :mod:`sfc.config`: strict, typed parameter groups."""

from __future__ import annotations

import dataclasses

import pytest

from sfc.config import (
    ConfigError,
    DavisConfig,
    FramesConfig,
    FusionConfig,
    FusionSearchConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
)

PROP = {"topk": 10, "temperature": 0.05, "radius": 12, "context": 20}


def test_from_dict_builds_a_frozen_typed_config() -> None:
    cfg = PropagationConfig.from_dict(PROP)
    assert cfg == PropagationConfig(topk=10, temperature=0.05, radius=12.0, context=20)
    assert isinstance(cfg.radius, float)  # an int YAML value for a float field
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.topk = 3  # type: ignore[misc]
    assert cfg.to_dict() == {"topk": 10, "temperature": 0.05, "radius": 12.0, "context": 20}


def test_unknown_key_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        PropagationConfig.from_dict({**PROP, "topK": 5})
    assert str(err.value) == "propagation.topK: unknown parameter; propagation takes: context, radius, temperature, topk"


def test_missing_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"propagation\.context: missing .*; propagation\.topk: missing"):
        PropagationConfig.from_dict({"temperature": 0.1, "radius": 3})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**PROP, "topk": "ten"}, "propagation.topk: expected int, got 'ten'"),
        ({**PROP, "topk": True}, "propagation.topk: expected int, got True"),
        ({**PROP, "topk": 2.5}, "propagation.topk: expected int, got 2.5"),
        ({**PROP, "topk": 0}, "propagation.topk: must be >= 1, got 0"),
        ({**PROP, "temperature": 0}, "propagation.temperature: must be > 0, got 0.0"),
        ({**PROP, "radius": float("nan")}, "propagation.radius: must be > 0, got nan"),
        ({**PROP, "context": -1}, "propagation.context: must be >= 0, got -1"),
    ],
)
def test_types_and_ranges(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        PropagationConfig.from_dict(values)
    assert message in str(err.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="parameter group 'propagation' must be a mapping of context, radius"):
        PropagationConfig.from_dict(5)  # type: ignore[arg-type]


def test_yaml_key_that_is_not_a_python_name() -> None:
    cfg = FusionConfig.from_dict({"lambda": 1, "align": "resize"})
    assert cfg.lam == 1.0 and cfg.to_dict() == {"lambda": 1.0, "align": "resize"}
    with pytest.raises(ConfigError, match="fusion.align: expected one of 'error' \\| 'resize', got 'crop'"):
        FusionConfig.from_dict({"lambda": 1, "align": "crop"})
    with pytest.raises(ConfigError, match="fusion.lam: unknown parameter; fusion takes: align, lambda"):
        FusionConfig.from_dict({"lam": 1, "align": "error"})


def test_lists_take_a_single_value_and_stay_immutable() -> None:
    base = {"sequences": None, "lambdas": [0.5, 1], "topks": 15, "radii": None, "temperatures": None, "contexts": None}
    cfg = FusionSearchConfig.from_dict(base)
    assert cfg.lambdas == (0.5, 1.0) and cfg.topks == (15,)  # `--params fusion_search.topks=15`
    assert cfg.to_dict()["lambdas"] == [0.5, 1.0]
    with pytest.raises(ConfigError, match=r"fusion_search\.topks: expected a list of int: expected int, got 'x'"):
        FusionSearchConfig.from_dict({**base, "topks": [5, "x"]})
    davis = DavisConfig.from_dict({"root": "d", "split": "val", "sequences": "bear", "max_frames": None, "scale": 1})
    assert davis.sequences == ("bear",)


def test_semantic_checkpoint_needs_an_arch() -> None:
    assert not SemanticConfig.from_dict({"arch": None, "checkpoint": None, "seed": 0}).enabled
    with pytest.raises(ConfigError, match="semantic.checkpoint: set \\(w.pth\\) but semantic.arch is null"):
        SemanticConfig.from_dict({"arch": None, "checkpoint": "w.pth", "seed": 0})
    with pytest.raises(ConfigError, match="semantic.arch: unknown 'resnet101'"):
        SemanticConfig.from_dict({"arch": "resnet101", "checkpoint": None, "seed": 0})


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_runtime_device_names(device: str) -> None:
    assert RuntimeConfig.from_dict({"device": device, "eval_workers": None, "overlays": 0}).device == device


def test_runtime_bad_device() -> None:
    with pytest.raises(ConfigError, match="runtime.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        RuntimeConfig.from_dict({"device": "gpu", "eval_workers": None, "overlays": 0})


def test_frames_kind_is_checked() -> None:
    values = {"root": "r", "kind": "auto", "extensions": [".jpg"], "video_extensions": [".mp4"], "verify": True,
              "video_fps": 6, "video_max_seconds": None, "jpeg_quality": 95, "output_dir": "o", "workers": None}
    assert FramesConfig.from_dict(values).video_fps == 6.0
    with pytest.raises(ConfigError, match="frames.kind: expected one of 'auto'"):
        FramesConfig.from_dict({**values, "kind": "youtube"})
    with pytest.raises(ConfigError, match="frames.verify: expected bool, got 'yes'"):
        FramesConfig.from_dict({**values, "verify": "yes"})
