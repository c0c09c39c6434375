"""Kedro dataset over a :class:`sfc.features.cache.FeatureCache` folder.

Saving takes ``{entry_id: FeatureJob}``: each job is computed only when its entry is missing or stale
(:meth:`FeatureCache.put`), so a rerun over a filled cache costs a few hash and header reads. Loading
returns the :class:`FeatureCache` handle; entries are opened (memory-mapped) by whoever needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from tqdm.auto import tqdm

from sfc.features.cache import FeatureCache, FeatureJob

logger = logging.getLogger(__name__)

_MIB = float(1 << 20)


def _mib(nbytes: int) -> str:
    """``12.3 MiB``; three decimals below 1 MiB so small entries do not read as empty."""
    mib = nbytes / _MIB
    return f"{mib:.1f} MiB" if mib >= 1 else f"{mib:.3f} MiB"


class FeatureCacheDataset(AbstractDataset[Mapping[str, FeatureJob], FeatureCache]):
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

    def save(self, data: Mapping[str, FeatureJob]) -> None:
        """Compute the missing entries of ``data`` and log one line per entry plus a total.

        Args:
            data: ``{entry_id: FeatureJob}`` (values may also be zero-argument callables returning a
                job, as in ``PartitionedDataset`` lazy saving).
        """
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{self._path}: expected a dict {{entry_id: FeatureJob}} to save, got {type(data).__name__}"
            )
        cache = FeatureCache(self._path)
        n_computed, total_bytes = 0, 0
        for entry_id, value in tqdm(data.items(), desc="features", unit="entry", total=len(data), disable=None):
            job = value() if callable(value) and not isinstance(value, FeatureJob) else value
            if not isinstance(job, FeatureJob):
                raise DatasetError(
                    f"{self._path}: entry {entry_id!r}: expected a FeatureJob, got {type(job).__name__}"
                )
            result = cache.put(job)
            total_bytes += result.nbytes
            T, *chw = result.shape
            what = (
                f"features {job.key.slug}/{job.sequence}: {_mib(result.nbytes)} "
                f"(T={T}, {'x'.join(map(str, chw))})"
            )
            if result.computed:
                n_computed += 1
                rate = T / result.seconds if result.seconds > 0 else float("inf")
                logger.info("%s, computed in %.1f s (%.1f frames/s)", what, result.seconds, rate)
            else:
                logger.info("%s, reused (cached)", what)
        logger.info(
            "Feature cache %s: %d entries, %d computed, %s", self._path, len(data), n_computed, _mib(total_bytes)
        )

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
