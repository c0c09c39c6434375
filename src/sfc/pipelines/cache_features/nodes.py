"""Nodes of ``cache_features``: plan one :class:`~sfc.features.cache.FeatureJob` per (backbone, sequence).

The node only keys and plans; :class:`~sfc.datasets.feature_cache.FeatureCacheDataset` runs the jobs
whose entries are missing. Models are loaded lazily, on the first job that needs them, so a rerun over
a filled cache never builds or loads a network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from sfc.data.davis import iter_frames, load_sequence
from sfc.features.cache import FeatureJob, FeatureKey, backbone_key
from sfc.models.backbones import iter_features
from sfc.models.checkpoints import load_backbone
from sfc.pipelines.evaluate_davis.nodes import check_semantic_params
from sfc.vos import resolve_device

logger = logging.getLogger(__name__)


def _lazy_model(params: dict[str, Any], name: str, device: torch.device) -> Callable[[], torch.nn.Module]:
    """A zero-argument function loading the ``params`` backbone on its first call, then memoised."""
    memo: dict[str, torch.nn.Module] = {}

    def get() -> torch.nn.Module:
        if "model" not in memo:
            model, info = load_backbone(params["arch"], params.get("checkpoint"), seed=params.get("seed", 0))
            memo["model"] = model.to(device).eval()
            where = f"{info.path} ({info.layout})" if info.path else f"random init, seed {info.seed}"
            logger.info("Loaded %s %s from %s on %s", name, params["arch"], where, device)
        return memo["model"]

    return get


def _compute(
    model: Callable[[], torch.nn.Module],
    root: str,
    sequence: str,
    *,
    max_frames: int | None,
    scale: float,
    batch_size: int,
    device: torch.device,
) -> Callable[[], Iterator[torch.Tensor]]:
    """``compute`` of one job: (C, h, w) L2-normalised CPU features of each frame, in order."""

    def compute() -> Iterator[torch.Tensor]:
        seq = load_sequence(root, sequence, max_frames=max_frames)
        return iter_features(
            model(), iter_frames(seq), batch_size=batch_size, device=device, scale=scale, output_device="cpu"
        )

    return compute


def plan_feature_cache(
    sequences: list[str],
    davis: dict[str, Any],
    backbone: dict[str, Any],
    semantic: dict[str, Any] | None,
    runtime: dict[str, Any],
    cache_features: dict[str, Any] | None = None,
) -> dict[str, FeatureJob]:
    """One job per (backbone, sequence) for ``backbone`` and, when ``semantic.arch`` is set, ``semantic``.

    Keys hash the checkpoint files (:func:`~sfc.features.cache.backbone_key`); nothing is loaded here.

    Args:
        sequences: names from ``select_davis_sequences``.
        davis: ``davis.*`` (root, max_frames, scale: frames and resize the features are computed for).
        backbone: ``backbone.*`` (arch, checkpoint, seed).
        semantic: ``semantic.*``; ``arch: null`` (or None) = no second network.
        runtime: ``runtime.*`` (``device``).
        cache_features: ``cache_features.*`` (``batch_size``: frames per forward pass, default 4).

    Returns:
        ``{"<key slug>/<sequence>": FeatureJob}``, saved (computed when missing) by ``feature_cache``.

    Raises:
        ValueError: ``semantic.checkpoint`` set with ``semantic.arch`` null, or a bad ``batch_size``.
        FileNotFoundError: a configured checkpoint file does not exist.
    """
    semantic = semantic or {}
    cache_features = cache_features or {}
    check_semantic_params(semantic)
    batch_size = int(cache_features.get("batch_size", 4))
    if batch_size < 1:
        raise ValueError(f"cache_features.batch_size must be >= 1, got {batch_size}")
    scale = float(davis.get("scale", 1.0))
    max_frames = davis.get("max_frames")
    root = str(davis["root"])
    device = resolve_device(runtime.get("device", "auto"))

    networks = [("backbone", backbone)] + ([("semantic", semantic)] if semantic.get("arch") is not None else [])
    keyed: list[tuple[str, dict[str, Any], FeatureKey]] = []
    for name, params in networks:
        key = backbone_key(params, scale, name=name)
        logger.info("Caching %s features as %s (weights %s)", name, key.slug, key.weights)
        keyed.append((name, params, key))

    frames = {seq: load_sequence(root, seq, max_frames=max_frames).frame_names for seq in sequences}
    jobs: dict[str, FeatureJob] = {}
    for name, params, key in keyed:
        model = _lazy_model(params, name, device)
        for seq in sequences:
            entry_id = f"{key.slug}/{seq}"
            if entry_id in jobs:  # semantic identical to backbone: one entry serves both
                continue
            jobs[entry_id] = FeatureJob(
                key=key,
                sequence=seq,
                frames=list(frames[seq]),
                compute=_compute(
                    model, root, seq, max_frames=max_frames, scale=scale, batch_size=batch_size, device=device
                ),
                source=None if params.get("checkpoint") is None else str(params["checkpoint"]),
            )
    logger.info(
        "Feature cache plan: %d entries (%d network(s) x %d sequence(s)), batch size %d, device %s",
        len(jobs), len(keyed), len(sequences), batch_size, device,
    )
    return jobs
