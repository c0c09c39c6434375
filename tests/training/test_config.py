"""Tests of :class:`sfc.training.FCTrainConfig`: the strict ``fc_pretrain`` group, values only from conf/base."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sfc.config import ConfigError
from sfc.training import TRAJECTORY_FIELDS, FCTrainConfig
from sfc.training.config import PLACEMENT_FIELDS
from tests.training.helpers import base_params, fc_params

PAPER = {
    "arch": "resnet18", "steps": 60_000, "batch_size": 96, "image_size": 256, "lr": 1e-3, "weight_decay": 0.0,
    "momentum_base": 0.99, "radius": 0.5, "scale_min": 0.0, "scale_max": 1.0, "flip": False,
    "projection_hidden_dim": 2048, "projection_dim": 256, "prediction_hidden_dim": 2048,
}


def test_conf_base_builds_the_papers_config() -> None:
    params = base_params()
    assert set(params) == set(FCTrainConfig.keys())  # no dead or missing option
    config = FCTrainConfig.from_dict(params)
    assert {k: getattr(config, k) for k in PAPER} == PAPER
    assert config.to_dict() == params and FCTrainConfig.from_dict(config.to_dict()) == config
    assert FCTrainConfig.GROUP == "fc_pretrain"  # the parameter group it checks


def test_every_field_is_required_and_the_config_is_frozen() -> None:
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(FCTrainConfig)
    )
    with pytest.raises(TypeError, match="missing"):
        FCTrainConfig(steps=10)  # type: ignore[call-arg]
    config = FCTrainConfig.from_dict(base_params())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 1  # type: ignore[misc]
    assert set(TRAJECTORY_FIELDS) < set(FCTrainConfig.keys())


def test_unknown_key_is_named_with_the_allowed_keys(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        FCTrainConfig.from_dict(fc_params(tmp_path, stesp=10))
    message = str(info.value)
    assert "fc_pretrain.stesp: unknown parameter" in message
    assert "fc_pretrain takes: " + ", ".join(FCTrainConfig.keys()) in message


def test_missing_key_is_an_error(tmp_path) -> None:
    params = fc_params(tmp_path)
    del params["lr"], params["work_dir"]
    with pytest.raises(ConfigError, match=r"fc_pretrain\.lr: missing .*fc_pretrain\.work_dir: missing"):
        FCTrainConfig.from_dict(params)
    with pytest.raises(ConfigError, match=r"fc_pretrain\.arch: missing"):
        FCTrainConfig.from_dict({"steps": 10})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", "ten", r"fc_pretrain\.steps: expected int\b.*'ten'"),
        ("steps", True, r"fc_pretrain\.steps: expected int\b.*True"),
        ("flip", "no", r"fc_pretrain\.flip: expected bool\b.*'no'"),
        ("max_minutes", "1h", r"fc_pretrain\.max_minutes: expected float\b.*'1h'"),
    ],
)
def test_wrong_type_is_an_error(tmp_path, key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FCTrainConfig.from_dict(fc_params(tmp_path, **{key: value}))


def test_ints_are_taken_as_floats(tmp_path) -> None:
    config = FCTrainConfig.from_dict(fc_params(tmp_path, lr=1, max_minutes=5))
    assert isinstance(config.lr, float) and config.lr == 1.0 and config.max_minutes == 5.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "fc_pretrain.steps: must be >= 1, got 0"),
        ({"image_size": 0}, "fc_pretrain.image_size: must be >= 1, got 0"),
        ({"projection_dim": 0}, "fc_pretrain.projection_dim: must be >= 1, got 0"),
        ({"nproc_per_node": 0}, "fc_pretrain.nproc_per_node: must be >= 1, got 0"),
        ({"scale_min": 0.8, "scale_max": 0.2}, "fc_pretrain.scale_min: need 0 <= scale_min <= scale_max <= 1"),
        ({"lr": 0}, "fc_pretrain.lr: must be > 0, got 0.0"),
        ({"weight_decay": -1}, "fc_pretrain.weight_decay: must be >= 0"),
        ({"momentum_base": 1.5}, "fc_pretrain.momentum_base: must be in [0, 1], got 1.5"),
        ({"radius": 0}, "fc_pretrain.radius: must be > 0"),
        ({"max_minutes": 0}, "fc_pretrain.max_minutes: must be > 0 or null"),
        ({"num_workers": -1}, "fc_pretrain.num_workers: must be >= 0"),
        ({"min_size": 1}, "fc_pretrain.min_size: must be >= 2"),
        ({"device": "gpu"}, "fc_pretrain.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"arch": "vgg"}, "fc_pretrain.arch: unknown 'vgg'; one of resnet18, resnet50"),
        ({"batch_size": 6, "nproc_per_node": 4}, "fc_pretrain.batch_size: the global batch 6 is not divisible by"),
        ({"work_dir": " "}, "fc_pretrain.work_dir: must not be empty"),
    ],
)
def test_out_of_range_values_are_errors(tmp_path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        FCTrainConfig.from_dict(fc_params(tmp_path, **overrides))


def test_checkpoints_store_the_training_options_without_placement(tmp_path) -> None:
    config = FCTrainConfig.from_dict(fc_params(tmp_path))
    options = config.training_options()
    assert set(options) == set(FCTrainConfig.keys()) - set(PLACEMENT_FIELDS)
    assert PLACEMENT_FIELDS == ("work_dir", "nproc_per_node")
