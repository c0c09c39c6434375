"""Kedro dataset for a folder of animated GIFs (``<name>.gif``), each streamed and written atomically.

Saving takes ``{name: frames}``, where ``frames`` is an iterable of (H, W, 3) uint8 RGB frames (e.g. an
:class:`sfc.viz.video.OverlayVideo`, which reads and blends one frame at a time) or a function
returning one; each GIF is written by :func:`sfc.viz.video.write_gif` (downscaled, temp file +
rename). GIFs of names no longer saved are removed first, so the folder always holds exactly the last
save's videos; the folder exists after any save, even an empty one, so kedro-mlflow's
``MlflowArtifactDataset`` can log it as an artifact folder. Loading returns ``{name: path}``.

``PartitionedDataset`` is not used: its files are not written atomically and it leaves no folder
behind when there is nothing to save.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from sfc.atomic import remove_stale_temporaries
from sfc.viz.video import write_gif

logger = logging.getLogger(__name__)

SUFFIX = ".gif"

Frames = Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]]


class GifFolderDataset(AbstractDataset[Mapping[str, Frames], dict[str, Path]]):
    """A folder of ``<name>.gif`` animations.

    Args:
        path: the folder.
        fps: frames per second of every GIF.
        max_side: the larger side of every GIF is at most this many pixels (frames are downscaled,
            never enlarged); null keeps the frames' size.
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, path: str, fps: float, max_side: int | None, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._fps = float(fps)
        self._max_side = None if max_side is None else int(max_side)
        self.metadata = metadata

    def _file(self, name: str) -> Path:
        parts = PurePosixPath(name).parts
        if not name or PurePosixPath(name).is_absolute() or ".." in parts:
            raise DatasetError(f"{self._path}: expected a relative video name without '..', got {name!r}")
        return self._path.joinpath(*parts).with_name(parts[-1] + SUFFIX)

    def save(self, data: Mapping[str, Frames]) -> None:
        if not isinstance(data, Mapping):
            raise DatasetError(f"{self._path}: expected a dict of name -> frames, got {type(data).__name__}")
        files = {name: self._file(name) for name in data}
        self._path.mkdir(parents=True, exist_ok=True)
        keep = set(files.values())
        for stale in self._path.rglob(f"*{SUFFIX}"):
            if stale not in keep:
                stale.unlink()
        for name, frames in data.items():
            stream = frames() if callable(frames) else frames
            remove_stale_temporaries(files[name].parent)
            n = write_gif(files[name], stream, fps=self._fps, max_side=self._max_side)
            logger.info("Wrote %s (%d frames)", files[name], n)

    def load(self) -> dict[str, Path]:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: GIF folder not found")
        return {
            p.relative_to(self._path).with_suffix("").as_posix(): p for p in sorted(self._path.rglob(f"*{SUFFIX}"))
            if not p.name.startswith(".")
        }

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "fps": self._fps, "max_side": self._max_side}
