"""Tests of :mod:`sfc.pipelines.cache_features.nodes`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sfc.data.davis import iter_frames, load_sequence
from sfc.features.cache import FeatureCache, backbone_key
from sfc.models.backbones import build_backbone, extract_features
from sfc.pipelines.cache_features import nodes
from tests.pipelines.cache_features import BACKBONE, CACHE, NO_SEMANTIC, RUNTIME, SEQUENCES
from tests.pipelines.evaluate_davis import davis_params


def _davis(root: Path, **overrides: Any) -> dict[str, Any]:
    return davis_params(root, **{"scale": 0.5, "max_frames": 4, **overrides})


def test_plan_backbone_only(tiny_davis: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "load_backbone", _raise)  # planning loads nothing
    jobs = nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, NO_SEMANTIC, RUNTIME, CACHE)
    key = backbone_key(BACKBONE, 0.5)
    assert list(jobs) == [f"{key.slug}/{seq}" for seq in SEQUENCES]
    job = jobs[f"{key.slug}/demo-01"]
    assert job.key == key and job.sequence == "demo-01" and job.source is None
    assert job.frames == ["00000", "00001", "00002", "00003"]  # max_frames


def test_plan_with_semantic_and_compute(tiny_davis: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "semantic.pth"
    torch.save(build_backbone("resnet18", seed=1).state_dict(), ckpt)  # torchvision layout
    semantic = {"arch": "resnet18", "checkpoint": str(ckpt), "seed": 0}
    jobs = nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, semantic, RUNTIME, CACHE)
    sem_key = backbone_key(semantic, 0.5, name="semantic")
    assert len(jobs) == 4 and sem_key.weights.startswith("sha256:")
    job = jobs[f"{sem_key.slug}/demo-00"]
    assert job.source == str(ckpt)

    got = torch.stack(list(job.compute()))
    model = build_backbone("resnet18", seed=1)
    frames = list(iter_frames(load_sequence(tiny_davis, "demo-00", max_frames=4)))
    expected = extract_features(model, frames, device="cpu", scale=0.5)
    assert got.shape == (4, 256, 4, 6)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_semantic_identical_to_backbone_is_one_entry(tiny_davis: Path) -> None:
    jobs = nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, dict(BACKBONE), RUNTIME, CACHE)
    assert len(jobs) == len(SEQUENCES)


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("load_backbone must not be called")


def test_cached_rerun_never_loads_a_model(
    tiny_davis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path / "features")
    calls: list[str] = []
    real = nodes.load_backbone

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(nodes, "load_backbone", counting)
    jobs = nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, NO_SEMANTIC, RUNTIME, CACHE)
    assert all(cache.put(job).computed for job in jobs.values())
    assert calls == ["resnet18"]  # loaded once for both sequences

    monkeypatch.setattr(nodes, "load_backbone", _raise)
    jobs = nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, NO_SEMANTIC, RUNTIME, CACHE)
    assert not any(cache.put(job).computed for job in jobs.values())
    # a max_frames run is served by a cache of more frames
    jobs = nodes.plan_feature_cache(
        SEQUENCES, _davis(tiny_davis, max_frames=3), BACKBONE, NO_SEMANTIC, RUNTIME, CACHE
    )
    assert not any(cache.put(job).computed for job in jobs.values())


def test_semantic_checkpoint_without_arch(tiny_davis: Path) -> None:
    semantic = {"arch": None, "checkpoint": "x.pth", "seed": 0}
    with pytest.raises(ValueError, match="semantic.checkpoint is set .* semantic.arch is null"):
        nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, semantic, RUNTIME, CACHE)


def test_missing_checkpoint_names_parameter(tiny_davis: Path, tmp_path: Path) -> None:
    backbone = {**BACKBONE, "checkpoint": str(tmp_path / "gone.pth")}
    with pytest.raises(FileNotFoundError, match=r"gone\.pth.*backbone\.checkpoint"):
        nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), backbone, NO_SEMANTIC, RUNTIME, CACHE)


def test_bad_batch_size(tiny_davis: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        nodes.plan_feature_cache(SEQUENCES, _davis(tiny_davis), BACKBONE, NO_SEMANTIC, RUNTIME, {"batch_size": 0})
