"""Correspondence maps of a DAVIS sequence and the per-network feature maps behind them."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sfc.config import BackboneConfig, DavisConfig, FusionConfig, SemanticConfig
from sfc.evaluation.common import iter_frame_features, load_networks, network_feature_maps
from sfc.evaluation.davis.correspondence import N_QUERIES, correspondence_sample
from sfc.evaluation.davis.reader import load_sequence, read_frame
from sfc.fusion import late_fusion
from sfc.viz.correspondence import query_cell

BACKBONE = BackboneConfig(arch="resnet18", checkpoint=None, seed=0)
NO_SEMANTIC = SemanticConfig(arch=None, checkpoint=None, seed=0)
SEMANTIC = SemanticConfig(arch="resnet18", checkpoint=None, seed=1)
FUSION = FusionConfig.from_dict({"lambda": 1.75, "align": "error"})


def _davis(root: Path, **overrides: object) -> DavisConfig:
    return DavisConfig.from_dict({"root": str(root), "split": "val", "sequences": None, "max_frames": None,
                                  "scale": 1.0, **overrides})


@pytest.fixture(scope="module")
def fused_networks():
    return load_networks(BACKBONE, SEMANTIC, FUSION, "cpu")


def test_feature_maps_match_the_propagation_features(tiny_davis: Path, fused_networks) -> None:
    seq = load_sequence(tiny_davis, "demo-00")
    frames = [read_frame(p) for p in seq.frame_paths[:2]]
    maps = network_feature_maps(fused_networks, frames)
    assert list(maps) == ["semantic", "FC", "fused"]
    h, w = seq.size[0] // 8, seq.size[1] // 8
    assert maps["FC"].shape[::2] == (2, h) and maps["FC"].shape[-1] == w
    for t in maps.values():
        assert t.device.type == "cpu" and t.shape[0] == 2
        assert torch.allclose(t.norm(dim=1), torch.ones(()), atol=1e-4)
    torch.testing.assert_close(maps["fused"], late_fusion(maps["semantic"], maps["FC"], 1.75))
    # the fused maps are exactly what the propagation sees
    fused = torch.stack(list(iter_frame_features(fused_networks, frames)))
    torch.testing.assert_close(maps["fused"], fused.cpu())
    with pytest.raises(ValueError, match="at least one frame"):
        network_feature_maps(fused_networks, [])


def test_sample_without_semantic_network(tiny_davis: Path) -> None:
    networks = load_networks(BACKBONE, NO_SEMANTIC, FUSION, "cpu")
    sample = correspondence_sample(_davis(tiny_davis, max_frames=5), "demo-01", networks)
    seq = load_sequence(tiny_davis, "demo-01")
    assert (sample.source_frame, sample.target_frame) == (seq.frame_names[0], seq.frame_names[2])  # middle of 5
    assert sample.title == f"demo-01: frame {seq.frame_names[0]} -> frame {seq.frame_names[2]}"
    np.testing.assert_array_equal(sample.source_rgb, read_frame(seq.frame_paths[0]))
    np.testing.assert_array_equal(sample.target_rgb, read_frame(seq.frame_paths[2]))
    assert 1 <= len(sample.queries) <= N_QUERIES and len(sample.maps_per_query) == len(sample.queries)
    for (y, x), maps in zip(sample.queries, sample.maps_per_query, strict=True):
        assert seq.first_mask[int(y), int(x)] > 0  # queries lie on the annotated objects
        assert list(maps) == ["FC"] and maps["FC"].shape == (seq.size[0] // 8, seq.size[1] // 8)


def test_sample_with_fusion_and_target_equal_to_source(tiny_davis: Path, tmp_path: Path, fused_networks) -> None:
    """A target frame equal to the source: every network's map peaks at the query cell."""
    root = Path(shutil.copytree(tiny_davis, tmp_path / "davis"))
    seq = load_sequence(root, "demo-00", max_frames=3)
    shutil.copyfile(seq.frame_paths[0], seq.frame_paths[1])  # the middle of 3 frames
    sample = correspondence_sample(_davis(root, max_frames=3), "demo-00", fused_networks)
    assert sample.target_frame == seq.frame_names[1]
    np.testing.assert_array_equal(sample.source_rgb, sample.target_rgb)
    for q, maps in zip(sample.queries, sample.maps_per_query, strict=True):
        assert list(maps) == ["semantic", "FC", "fused"]
        for sim in maps.values():
            cell = query_cell(q, sample.source_rgb.shape[:2], sim.shape)
            assert sim[cell] == pytest.approx(1.0, abs=1e-4) and sim[cell] == pytest.approx(sim.max())


def test_sample_respects_scale(tiny_davis: Path) -> None:
    networks = load_networks(BACKBONE, NO_SEMANTIC, dataclasses.replace(FUSION), "cpu")
    sample = correspondence_sample(_davis(tiny_davis, scale=0.5), "demo-00", networks, n_queries=1)
    assert len(sample.queries) == 1
    assert sample.maps_per_query[0]["FC"].shape == (4, 6)  # 64 x 96 at scale 0.5, stride 8
