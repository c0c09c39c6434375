"""Kedro dataset for a results folder of predicted label maps (``<sequence>/<frame>.png`` palette PNGs).

The official DAVIS results layout, also used for VIP part maps: each PNG's palette indices are the
predicted ids (object ids, part ids). Saving consumes an iterable of
:class:`~sfc.evaluation.common.FramePrediction` lazily, so a whole benchmark is
written frame by frame without ever holding a video's masks in memory; every PNG is written
atomically (temp file + rename). Before the first frame of a sequence is written, stale PNGs of that
sequence are removed, so a results folder never mixes two runs. A ``run_info.json`` with the frame
counts and wall time of the save is written last; loading returns a :class:`MaskResults` handle.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from sfc.atomic import write_json
from sfc.evaluation.common import FramePrediction
from sfc.evaluation.davis.reader import write_mask

logger = logging.getLogger(__name__)

RUN_INFO = "run_info.json"


@dataclass(frozen=True)
class MaskResults:
    """Handle to a written results folder."""

    path: Path
    info: dict[str, Any]


class MaskResultsDataset(AbstractDataset[Iterable[FramePrediction], MaskResults]):
    """Results folder in the official DAVIS layout (``<sequence>/<frame>.png``).

    Args:
        path: folder to write ``<seq>/<frame>.png`` into.
        metadata: free-form metadata (kedro-viz layer etc.).
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def save(self, data: Iterable[FramePrediction]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        # No run_info.json = incomplete folder: removed first, written last.
        (self._path / RUN_INFO).unlink(missing_ok=True)
        frames: dict[str, int] = {}
        t0 = time.perf_counter()
        for pred in data:
            seq_dir = self._path / pred.sequence
            if pred.sequence not in frames:
                frames[pred.sequence] = 0
                seq_dir.mkdir(parents=True, exist_ok=True)
                for stale in seq_dir.glob("*.png"):
                    stale.unlink()
            write_mask(seq_dir / f"{pred.frame}.png", pred.mask)
            frames[pred.sequence] += 1
        seconds = time.perf_counter() - t0
        total = sum(frames.values())
        info = {
            "sequences": frames,
            "frames": total,
            "seconds": round(seconds, 3),
            "frames_per_second": round(total / seconds, 4) if seconds > 0 else None,
        }
        write_json(self._path / RUN_INFO, info)
        logger.info("Wrote %d predicted frames of %d sequence(s) to %s", total, len(frames), self._path)

    def load(self) -> MaskResults:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: results folder not found")
        info_path = self._path / RUN_INFO
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        return MaskResults(self._path, info)

    def _exists(self) -> bool:
        return (self._path / RUN_INFO).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
