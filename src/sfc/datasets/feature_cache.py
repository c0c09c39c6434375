"""Kedro dataset over a :class:`sfc.features.cache.FeatureCache` folder.

Saving takes ``{entry_id: FeatureEntry}`` and writes each entry, streaming its features frame by frame
(the node decides which entries are missing; this dataset only writes). Loading returns the
:class:`FeatureCache` handle; entries are opened (memory-mapped) by whoever needs them. The catalog
declares the folder twice: ``feature_cache`` (written by ``cache_features``, read by
``fusion_search``) and ``feature_cache_previous`` (a read-only view the planning node checks).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from tqdm.auto import tqdm

from sfc.features.cache import FeatureCache, FeatureEntry

logger = logging.getLogger(__name__)

_MIB = float(1 << 20)


def _mib(nbytes: int) -> str:
    """``12.3 MiB``; three decimals below 1 MiB so small entries do not read as empty."""
    mib = nbytes / _MIB
    return f"{mib:.1f} MiB" if mib >= 1 else f"{mib:.3f} MiB"


class FeatureCacheDataset(AbstractDataset[Mapping[str, FeatureEntry], FeatureCache]):
    """A feature-cache root folder (``<path>/<key slug>/<sequence>.{npy,json}``).

    Args:
        path: cache root; created on the first save.
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> FeatureCache:
        """The cache handle (the folder need not exist: opening an entry then raises ``MissingFeaturesError``)."""
        return FeatureCache(self._path)

    def save(self, data: Mapping[str, FeatureEntry]) -> None:
        """Write every entry of ``data``, one at a time, logging each entry's size and a total."""
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{self._path}: expected a dict {{entry_id: FeatureEntry}} to save, got {type(data).__name__}"
            )
        cache = FeatureCache(self._path)
        total_bytes = 0
        for entry_id, entry in tqdm(data.items(), desc="features", unit="entry", total=len(data), disable=None):
            if not isinstance(entry, FeatureEntry):
                raise DatasetError(f"{self._path}: entry {entry_id!r}: expected a FeatureEntry, got {type(entry).__name__}")
            result = cache.write(entry)
            total_bytes += result.nbytes
            T, *chw = result.shape
            rate = T / result.seconds if result.seconds > 0 else float("inf")
            logger.info(
                "features %s: %s (T=%d, %s), computed in %.1f s (%.1f frames/s)",
                entry_id, _mib(result.nbytes), T, "x".join(map(str, chw)), result.seconds, rate,
            )
        logger.info("Feature cache %s: %d entries written, %s", self._path, len(data), _mib(total_bytes))

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
