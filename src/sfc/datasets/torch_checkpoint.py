"""Kedro dataset for a torch checkpoint dict (``{'model': state_dict, ...}``), written atomically.

``kedro_datasets_experimental.pytorch.PyTorchDataset`` only saves ``nn.Module`` state dicts; our FC
export is a dict with metadata, so this is the ~40-line custom dataset Kedro's docs recommend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError

from sfc.atomic import atomic_path


class TorchCheckpointDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A ``.pth`` file holding a dict of tensors and plain metadata.

    Args:
        filepath: where the checkpoint lives.
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath}: checkpoint not found")
        return torch.load(self._filepath, map_location="cpu", weights_only=True)

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or "model" not in data:
            raise DatasetError(f"{self._filepath}: expected a dict with a 'model' state dict, got {type(data).__name__}")
        # sfc.atomic: a temporary file beside the target (umask permissions, e.g. 0644), fsynced and
        # renamed over it, so a crash leaves the old checkpoint or the new one, never a partial file.
        with atomic_path(self._filepath, durable=True) as tmp:
            torch.save(data, tmp)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
