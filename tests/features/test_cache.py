"""Tests of :mod:`sfc.features.cache`: keys, round trip, reuse checks, staleness and atomic writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sfc.config import BackboneConfig
from sfc.features.cache import (
    FeatureCache,
    FeatureCacheError,
    FeatureEntry,
    FeatureKey,
    MissingFeaturesError,
    StaleFeaturesError,
    backbone_key,
    feature_layer,
)

FRAMES = [f"{i:05d}" for i in range(5)]
SHAPE = (8, 3, 4)  # (C, h, w)
HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def _feats(n: int = len(FRAMES), seed: int = 0) -> torch.Tensor:
    """(n, C, h, w) unit-norm features with one all-zero location in frame 0."""
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, *SHAPE, generator=g), dim=1)
    feats[0, :, 0, 0] = 0.0
    return feats


def _entry(key: FeatureKey, frames: list[str], feats, source: str | None = None) -> FeatureEntry:
    """An entry of sequence ``bear`` streaming ``feats`` ((T, C, h, w) tensor or an iterable of frames)."""
    stream = iter(feats.unbind(0)) if isinstance(feats, torch.Tensor) else iter(feats)
    return FeatureEntry(key, "bear", list(frames), stream, source=source)


def _net(arch: str, checkpoint: str | None, seed: int = 0) -> BackboneConfig:
    return BackboneConfig(arch=arch, checkpoint=checkpoint, seed=seed)


def _key(weights: str = "random:seed0", scale: float = 0.5) -> FeatureKey:
    return FeatureKey("resnet18", weights, scale, "layer3")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ keys


def test_feature_layer() -> None:
    assert feature_layer("resnet18") == feature_layer("resnet50") == "layer3"
    assert feature_layer("vit_small_patch16") == "patch_tokens"
    with pytest.raises(ValueError, match="unknown arch"):
        feature_layer("alexnet")


def test_slug_is_filesystem_safe_and_short() -> None:
    key = FeatureKey("resnet18", "sha256:3f2a9c1b7d4e" + "0" * 52, 0.5, "layer3")
    assert key.slug == "resnet18-sha256_3f2a9c1b7d4e-s0.5-layer3"
    assert FeatureKey("resnet50", "random:seed0", 1, "layer3").slug == "resnet50-random_seed0-s1-layer3"
    assert FeatureKey.from_dict(key.to_dict()) == key


@pytest.mark.parametrize("weights", ["sha256:abc", "seed0", "random:0", "sha256:" + "G" * 64])
def test_key_rejects_bad_weights(weights: str) -> None:
    with pytest.raises(ValueError, match="weights"):
        _key(weights)


def test_key_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        _key(scale=0.0)


def test_backbone_key_hashes_checkpoint_content(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"weights v1")
    k1 = backbone_key(_net("resnet18", str(ckpt), 0), 0.5)
    assert k1 == backbone_key(_net("resnet18", str(ckpt), 3), 0.5)  # stable
    assert k1.weights.startswith("sha256:") and len(k1.weights) == 7 + 64
    ckpt.write_bytes(b"weights v2")  # same path, new content
    k2 = backbone_key(_net("resnet18", str(ckpt), 0), 0.5)
    assert k2 != k1 and k2.slug != k1.slug
    assert backbone_key(_net("resnet18", str(ckpt), 0), 1.0).scale == 1.0


def test_backbone_key_random_includes_seed() -> None:
    k0 = backbone_key(_net("resnet50", None, 0), 0.5)
    k7 = backbone_key(_net("resnet50", None, 7), 0.5)
    assert (k0.weights, k7.weights) == ("random:seed0", "random:seed7")
    assert k0.slug == "resnet50-random_seed0-s0.5-layer3" and k0 != k7


def test_backbone_key_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth.*semantic\.checkpoint"):
        backbone_key(_net("resnet50", str(missing), 0), 1.0, name="semantic")


# ------------------------------------------------------------------------------------------ round trip


def test_write_open_round_trip(tmp_path: Path) -> None:
    cache, key, feats = FeatureCache(tmp_path), _key(), _feats()
    result = cache.write(_entry(key, FRAMES, feats, source="w.pth"))
    assert result.shape == (len(FRAMES), *SHAPE) and result.nbytes == cache.size_bytes(key, "bear")
    npy, js = cache.entry_paths(key, "bear")
    assert npy == tmp_path / key.slug / "bear.npy" and js.is_file()
    assert _files(tmp_path) == sorted([f"{key.slug}/bear.npy", f"{key.slug}/bear.json"])

    meta = json.loads(js.read_text())
    assert meta["frames"] == FRAMES and meta["dtype"] == "float16" and meta["source"] == "w.pth"
    assert {k: meta[k] for k in ("arch", "weights", "scale", "layer")} == key.to_dict()

    handle = cache.open(key, "bear")
    assert handle.shape == (len(FRAMES), *SHAPE) and len(handle) == len(FRAMES)
    assert handle.numpy().dtype == np.float16 and handle.frames == FRAMES
    got = torch.stack(list(handle))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, feats, atol=1e-3, rtol=0)
    norms = got.norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.ones(()), atol=1e-6)
    assert float(norms[0, 0, 0]) == 0.0  # zero vectors stay zero
    torch.testing.assert_close(handle.frame(-1), handle.frame(len(FRAMES) - 1))
    with pytest.raises(IndexError):
        handle.frame(len(FRAMES))
    (entry,) = cache.entries()
    assert entry["sequence"] == "bear" and entry["nbytes"] == result.nbytes


def test_written_entry_is_reported_present(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    assert not cache.has(key, "bear", FRAMES)
    cache.write(_entry(key, FRAMES, _feats()))
    assert cache.has(key, "bear", FRAMES)
    assert not cache.has(_key(HASH_A), "bear", FRAMES)


def test_prefix_served_and_longer_request_recomputes(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    cache.write(_entry(key, FRAMES[:3], _feats(3)))
    # a prefix of the cached frames is served without recomputation
    assert cache.has(key, "bear", FRAMES[:2])
    assert cache.open(key, "bear", FRAMES[:2]).shape[0] == 2
    # more frames than cached: missing, and a new write replaces the whole entry
    assert not cache.has(key, "bear", FRAMES)
    with pytest.raises(MissingFeaturesError, match="3 frames .* cached.*5 requested"):
        cache.open(key, "bear", FRAMES)
    assert cache.write(_entry(key, FRAMES, _feats())).shape[0] == len(FRAMES)
    assert cache.open(key, "bear").frames == FRAMES


def test_other_frames_are_stale(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    cache.write(_entry(key, FRAMES, _feats()))
    other = ["00000", "00002"]
    assert not cache.has(key, "bear", other)
    with pytest.raises(StaleFeaturesError, match=r"bear\.json.*position 1.*'00001'.*'00002'"):
        cache.open(key, "bear", other)


def test_other_checkpoint_is_stale_with_both_hashes(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.write(_entry(_key(HASH_A), FRAMES, _feats(), source="old.pth"))
    with pytest.raises(StaleFeaturesError) as info:
        cache.open(_key(HASH_B), "bear")
    msg = str(info.value)
    assert HASH_A in msg and HASH_B in msg and "old.pth" in msg
    assert "another checkpoint" in msg and "cache_features" in msg
    assert str(tmp_path / _key(HASH_A).slug / "bear.json") in msg


def test_missing_entry(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path / "not-yet"), _key()
    assert not cache.has(key, "bear", FRAMES) and cache.entries() == []
    with pytest.raises(MissingFeaturesError, match=r"bear\.npy.*cache_features") as info:
        cache.open(key, "bear")
    assert isinstance(info.value, LookupError)
    with pytest.raises(MissingFeaturesError):
        cache.size_bytes(key, "bear")


def test_other_scale_is_missing_not_stale(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.write(_entry(_key(scale=1.0), FRAMES, _feats()))
    with pytest.raises(MissingFeaturesError, match="cached under other keys: resnet18-random_seed0-s1-layer3"):
        cache.open(_key(scale=0.5), "bear")


def test_truncated_npy_is_stale_and_recomputed(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    cache.write(_entry(key, FRAMES, _feats()))
    npy, _ = cache.entry_paths(key, "bear")
    npy.write_bytes(npy.read_bytes()[:-100])
    assert not cache.has(key, "bear", FRAMES)
    with pytest.raises(StaleFeaturesError, match=r"bear\.npy"):
        cache.open(key, "bear")
    cache.write(_entry(key, FRAMES, _feats()))
    assert cache.open(key, "bear").shape[0] == len(FRAMES)


def test_missing_npy_and_corrupt_json_are_stale(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    cache.write(_entry(key, FRAMES, _feats()))
    npy, js = cache.entry_paths(key, "bear")
    npy.unlink()
    with pytest.raises(StaleFeaturesError, match=r"bear\.npy: feature file missing"):
        cache.open(key, "bear")
    js.write_text("{not json")
    with pytest.raises(StaleFeaturesError, match=r"bear\.json: unreadable"):
        cache.open(key, "bear")


def test_exception_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()

    def failing() -> Iterator[torch.Tensor]:
        yield from _feats(2).unbind(0)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.write(_entry(key, FRAMES, failing()))
    assert _files(tmp_path) == []
    assert not cache.has(key, "bear", FRAMES)


def test_failed_recompute_keeps_no_stale_json(tmp_path: Path) -> None:
    """A valid 3-frame entry, then a failing 5-frame recompute: the old entry survives intact."""
    cache, key = FeatureCache(tmp_path), _key()
    cache.write(_entry(key, FRAMES[:3], _feats(3)))
    with pytest.raises(FeatureCacheError):
        cache.write(_entry(key, FRAMES, _feats(4)))
    assert _files(tmp_path) == sorted([f"{key.slug}/bear.npy", f"{key.slug}/bear.json"])
    assert cache.has(key, "bear", FRAMES[:3])


@pytest.mark.parametrize("n", [3, 7])
def test_wrong_frame_count(tmp_path: Path, n: int) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    with pytest.raises(FeatureCacheError, match=r"sequence 'bear', backbone resnet18-random_seed0"):
        cache.write(_entry(key, FRAMES, _feats(n)))
    assert _files(tmp_path) == []


def test_differing_frame_shapes(tmp_path: Path) -> None:
    cache, key = FeatureCache(tmp_path), _key()
    frames = [torch.zeros(SHAPE), torch.zeros(8, 3, 5)]
    with pytest.raises(FeatureCacheError, match=r"'00001' has features of shape \(8, 3, 5\)"):
        cache.write(_entry(key, FRAMES[:2], frames))
    assert _files(tmp_path) == []


def test_bad_sequence_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache file name"):
        FeatureCache(tmp_path).entry_paths(_key(), "../escape")
