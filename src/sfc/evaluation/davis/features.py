"""DAVIS features for the feature cache: which entries a configuration needs, and lazy streams for the missing.

:func:`plan_feature_entries` keys every (network, sequence) pair of a configuration by content
(:func:`sfc.features.cache.backbone_key`), skips the entries the cache already holds, and returns a
:class:`~sfc.features.cache.FeatureEntry` for each missing one whose ``features`` is a generator:
nothing is decoded or computed, and no network is loaded, until whoever writes the entry consumes
it. A fully cached configuration therefore loads no network at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import torch

from sfc.config import BackboneConfig, DavisConfig, SemanticConfig
from sfc.device import resolve_device
from sfc.evaluation.common import describe_network, load_network
from sfc.evaluation.davis.reader import iter_frames, load_sequence
from sfc.features.cache import FeatureCache, FeatureEntry, FeatureKey, backbone_key

logger = logging.getLogger(__name__)

__all__ = ["plan_feature_entries"]


def _lazy_network(cfg: BackboneConfig | SemanticConfig, group: str, device: torch.device) -> Callable[[], torch.nn.Module]:
    """A function loading the network on its first call (then memoised)."""
    memo: dict[str, torch.nn.Module] = {}

    def get() -> torch.nn.Module:
        if "model" not in memo:
            model, info = load_network(cfg, group=group)
            memo["model"] = model.to(device)
            logger.info("Loaded %s %s on %s", group, describe_network(str(cfg.arch), info), device)
        return memo["model"]

    return get


def _stream(
    network: Callable[[], torch.nn.Module], davis: DavisConfig, sequence: str, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """(C, h, w) L2-normalised CPU features of each frame of ``sequence``, computed while consumed."""
    from sfc.models.backbones import iter_features  # torch-heavy

    seq = load_sequence(davis.root, sequence, max_frames=davis.max_frames)
    yield from iter_features(
        network(), iter_frames(seq), batch_size=batch_size, device=device, scale=davis.scale, output_device="cpu"
    )


def plan_feature_entries(
    sequences: list[str],
    davis: DavisConfig,
    networks: dict[str, BackboneConfig | SemanticConfig],
    cache: FeatureCache,
    *,
    device: str,
    batch_size: int,
) -> dict[str, FeatureEntry]:
    """The entries of ``cache`` that ``networks`` x ``sequences`` still need.

    Args:
        sequences: validated sequence names.
        davis: root, max_frames and scale the features are computed for.
        networks: ``{"backbone": cfg, "semantic": cfg}`` (groups with a null arch are skipped).
        cache: the current cache (read only: which entries exist).
        device: where the networks run (``auto`` / ``cpu`` / ``cuda[:N]``).
        batch_size: frames per forward pass.

    Returns:
        ``{"<key slug>/<sequence>": FeatureEntry}`` for the missing entries only, in network then
        sequence order; a network identical to another (same key) is computed once.

    Raises:
        FileNotFoundError: a configured checkpoint file does not exist.
    """
    dev = resolve_device(device)
    keyed: list[tuple[str, BackboneConfig | SemanticConfig, FeatureKey]] = []
    for group, cfg in networks.items():
        if cfg.arch is None:
            continue
        key = backbone_key(cfg, davis.scale, name=group)
        logger.info("%s features keyed as %s (weights %s)", group, key.slug, key.weights)
        keyed.append((group, cfg, key))
    frames = {s: load_sequence(davis.root, s, max_frames=davis.max_frames).frame_names for s in sequences}
    entries: dict[str, FeatureEntry] = {}
    seen: set[str] = set()
    reused = 0
    for group, cfg, key in keyed:
        network = _lazy_network(cfg, group, dev)
        for seq in sequences:
            entry_id = f"{key.slug}/{seq}"
            if entry_id in seen:  # semantic identical to backbone: one entry serves both
                continue
            seen.add(entry_id)
            if cache.has(key, seq, list(frames[seq])):
                reused += 1
                logger.info("features %s: cached, reused", entry_id)
                continue
            entries[entry_id] = FeatureEntry(
                key=key,
                sequence=seq,
                frames=list(frames[seq]),
                features=_stream(network, davis, seq, batch_size, dev),
                source=cfg.checkpoint,
            )
    logger.info(
        "Feature cache: %d entries needed (%d network(s) x %d sequence(s)), %d cached, %d to compute on %s",
        len(seen), len(keyed), len(sequences), reused, len(entries), dev,
    )
    return entries
