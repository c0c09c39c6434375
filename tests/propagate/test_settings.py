"""Settings of ``sfc propagate``: conf/base/parameters.yml is the only source of defaults, flags override it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sfc.config import ConfigError
from sfc.propagate import PropagateInputError, load_settings, project_parameters_path


def test_defaults_are_the_projects_parameters() -> None:
    path = project_parameters_path()
    assert path.is_file() and path.parts[-3:] == ("conf", "base", "parameters.yml")
    conf = yaml.safe_load(path.read_text())
    s = load_settings()
    assert s.propagation.to_dict() == conf["propagation"]
    assert s.backbone.to_dict() == conf["backbone"]
    assert s.semantic.to_dict() == conf["semantic"]
    assert s.scale == conf["davis"]["scale"]
    assert s.device == conf["runtime"]["device"]
    assert s.fusion.lam == conf["fusion"]["lambda"]
    assert s.parameters == path


def test_flags_override_one_parameter_each(tmp_path: Path) -> None:
    ckpt = tmp_path / "fc.pth"
    ckpt.write_bytes(b"x")
    s = load_settings(fc_checkpoint=str(ckpt), topk=15, temperature=0.1, radius=15, context=7, scale=0.5,
                      semantic_arch="resnet50", lam=2.0, device="cpu")
    assert s.propagation.to_dict() == {"topk": 15, "temperature": 0.1, "radius": 15.0, "context": 7}
    assert (s.backbone.checkpoint, s.semantic.arch, s.fusion.lam, s.scale, s.device) == (str(ckpt), "resnet50", 2.0, 0.5, "cpu")
    assert "fusion" in s.result_settings()
    assert "fusion" not in load_settings().result_settings()  # unused without a semantic network


def test_bad_settings() -> None:
    with pytest.raises(PropagateInputError, match=r"--lambda .* give --semantic-arch too"):
        load_settings(lam=1.0)
    with pytest.raises(ConfigError, match=r"propagation\.temperature: must be > 0"):
        load_settings(temperature=0.0)
    with pytest.raises(ValueError, match=r"runtime\.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        load_settings(device="gpu")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth: checkpoint file not found \(--fc-checkpoint"):
        load_settings(fc_checkpoint="nope.pth")


def test_parameters_file_missing_or_incomplete(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"params\.yml: parameters file not found.*--parameters FILE"):
        load_settings(tmp_path / "params.yml")
    (tmp_path / "p.yml").write_text("davis: {}\n")
    with pytest.raises(PropagateInputError, match=r"p\.yml: expected the parameter groups backbone, semantic"):
        load_settings(tmp_path / "p.yml")
