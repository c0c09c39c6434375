"""Tests of :mod:`sfc.pipelines.cache_features.nodes` (planning the missing feature-cache entries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import sfc.models.checkpoints
from sfc.config import BackboneConfig, ConfigError, SemanticConfig
from sfc.evaluation.davis.reader import iter_frames, load_sequence
from sfc.features.cache import FeatureCache, backbone_key
from sfc.models.backbones import build_backbone, extract_features
from sfc.pipelines.cache_features import nodes
from tests.pipelines.cache_features import BACKBONE, CACHE, NO_SEMANTIC, RUNTIME, SEQUENCES
from tests.pipelines.evaluate_davis import davis_params


def _davis(root: Path, **overrides: Any) -> dict[str, Any]:
    return davis_params(root, **{"scale": 0.5, "max_frames": 4, **overrides})


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no network may be loaded here")


def _plan(root: Path, cache: FeatureCache, semantic: dict = NO_SEMANTIC, backbone: dict = BACKBONE, **davis: Any):
    return nodes.plan_feature_cache(SEQUENCES, cache, _davis(root, **davis), backbone, semantic, RUNTIME, CACHE)


def test_plan_backbone_only_loads_nothing(tiny_davis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfc.models.checkpoints, "load_backbone", _raise)  # planning loads nothing
    entries = _plan(tiny_davis, FeatureCache(tmp_path))
    key = backbone_key(BackboneConfig.from_dict(BACKBONE), 0.5)
    assert list(entries) == [f"{key.slug}/{seq}" for seq in SEQUENCES]
    entry = entries[f"{key.slug}/demo-01"]
    assert entry.key == key and entry.sequence == "demo-01" and entry.source is None
    assert entry.frames == ["00000", "00001", "00002", "00003"]  # max_frames


def test_plan_with_semantic_streams_its_features(tiny_davis: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "semantic.pth"
    torch.save(build_backbone("resnet18", seed=1).state_dict(), ckpt)  # torchvision layout
    semantic = {"arch": "resnet18", "checkpoint": str(ckpt), "seed": 0}
    entries = _plan(tiny_davis, FeatureCache(tmp_path / "cache"), semantic)
    sem_key = backbone_key(SemanticConfig.from_dict(semantic), 0.5, name="semantic")
    assert len(entries) == 4 and sem_key.weights.startswith("sha256:")
    entry = entries[f"{sem_key.slug}/demo-00"]
    assert entry.source == str(ckpt)

    got = torch.stack(list(entry.features))
    model = build_backbone("resnet18", seed=1)
    frames = list(iter_frames(load_sequence(tiny_davis, "demo-00", max_frames=4)))
    expected = extract_features(model, frames, device="cpu", scale=0.5)
    assert got.shape == (4, 256, 4, 6)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_semantic_identical_to_backbone_is_one_entry(tiny_davis: Path, tmp_path: Path) -> None:
    assert len(_plan(tiny_davis, FeatureCache(tmp_path), dict(BACKBONE))) == len(SEQUENCES)


def test_cached_entries_are_not_planned_and_load_no_network(
    tiny_davis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path / "features")
    calls: list[str] = []
    real = sfc.models.checkpoints.load_backbone

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(sfc.models.checkpoints, "load_backbone", counting)
    for entry in _plan(tiny_davis, cache).values():
        cache.write(entry)
    assert calls == ["resnet18"]  # loaded once for both sequences

    monkeypatch.setattr(sfc.models.checkpoints, "load_backbone", _raise)
    assert _plan(tiny_davis, cache) == {}
    assert _plan(tiny_davis, cache, max_frames=3) == {}  # a max_frames run is served by more frames


def test_semantic_checkpoint_without_arch(tiny_davis: Path, tmp_path: Path) -> None:
    semantic = {"arch": None, "checkpoint": "x.pth", "seed": 0}
    with pytest.raises(ConfigError, match="semantic.checkpoint: set .* semantic.arch is null"):
        _plan(tiny_davis, FeatureCache(tmp_path), semantic)


def test_missing_checkpoint_names_parameter(tiny_davis: Path, tmp_path: Path) -> None:
    backbone = {**BACKBONE, "checkpoint": str(tmp_path / "gone.pth")}
    with pytest.raises(FileNotFoundError, match=r"gone\.pth.*backbone\.checkpoint"):
        _plan(tiny_davis, FeatureCache(tmp_path), backbone=backbone)


def test_bad_batch_size(tiny_davis: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache_features.batch_size: must be >= 1"):
        nodes.plan_feature_cache(
            SEQUENCES, FeatureCache(tmp_path), _davis(tiny_davis), BACKBONE, NO_SEMANTIC, RUNTIME, {"batch_size": 0}
        )
