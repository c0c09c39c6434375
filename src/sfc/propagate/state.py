"""Resume state of an ``sfc propagate`` output folder.

Layout (beside the outputs)::

    <out>/masks/00000.png ...            one palette PNG per finished frame (written atomically)
    <out>/.resume/state.json             the settings key and what it was computed from
    <out>/.resume/soft/00123.npy         (h, w, K) float32 soft labels of the last m frames

A frame is finished when its PNG exists; frames finish in order, so the finished frames are the
longest run ``00000.png .. <n-1>.png``. Each frame's soft labels are written before its PNG, and a
file is deleted once it has left the context window of every later frame, so the folder holds at
most m + 1 of them.

On restart the propagation state is rebuilt exactly: the first frame's features and labels, and for
the m frames before ``n`` their features (recomputed: the networks are deterministic and a frame's
features do not depend on its batch) and their saved soft labels. A resumed run then writes the same
masks as an uninterrupted one. Where a soft-label file is missing (deleted by hand, or written by an
older run), the frame's labels are re-derived from its saved PNG as a one-hot map resized to the
feature grid; that resume is approximate (documented in docs/propagate.md with its measured effect).

The settings key hashes everything that decides the masks: the input video's content, the
rasterised first-frame mask, the networks (arch, checkpoint content, seed), lambda, top-k,
temperature, r', m and the scale. Resuming into a folder whose key differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfc.atomic import atomic_path, remove_stale_temporaries, write_json
from sfc.propagate.errors import PropagateInputError

logger = logging.getLogger(__name__)

__all__ = ["MASKS_DIR", "STATE_DIR", "ResumeState", "mask_path", "settings_key"]

MASKS_DIR = "masks"
STATE_DIR = ".resume"
STATE_FILE = "state.json"
SOFT_DIR = "soft"
STATE_VERSION = 1


def settings_key(record: dict[str, Any]) -> str:
    """SHA-256 of a JSON record (sorted keys): the identity of a propagation's result."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def mask_path(out_dir: Path, t: int) -> Path:
    """``<out>/masks/<t:05d>.png``."""
    return Path(out_dir) / MASKS_DIR / f"{t:05d}.png"


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two JSON records."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


@dataclass
class ResumeState:
    """The resume state of one output folder (see the module docstring).

    Attributes:
        out_dir: the output folder.
        key: the settings key of this run.
        record: what the key was computed from (kept in ``state.json``).
        approximate: frames whose context labels had to be re-derived from their PNG on this resume.
    """

    out_dir: Path
    key: str
    record: dict[str, Any]
    approximate: list[int] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.out_dir / STATE_DIR

    @property
    def masks_dir(self) -> Path:
        return self.out_dir / MASKS_DIR

    def soft_path(self, t: int) -> Path:
        return self.state_dir / SOFT_DIR / f"{t:05d}.npy"

    # --------------------------------------------------------------------------------- lifecycle
    def open(self, *, overwrite: bool = False) -> int:
        """Check (or create) the folder's state; return the number n of finished frames.

        Args:
            overwrite: delete this folder's earlier masks and state first (start over).

        Raises:
            PropagateInputError: ``out_dir`` is a file, or holds masks of another propagation (other
                settings or inputs: the differing settings are named), or masks without a state file.
        """
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise PropagateInputError(f"{self.out_dir}: expected an output folder, found a file")
        if overwrite:
            for sub in (self.masks_dir, self.state_dir):
                shutil.rmtree(sub, ignore_errors=True)
        state_file = self.state_dir / STATE_FILE
        has_masks = self.masks_dir.is_dir() and any(self.masks_dir.glob("*.png"))
        if state_file.is_file():
            try:
                old = json.loads(state_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise PropagateInputError(f"{state_file}: unreadable resume state ({exc}); use --overwrite to start over") from exc
            if old.get("key") != self.key and has_masks:
                diff = _differences(old.get("record", {}), self.record) or ["format version"]
                raise PropagateInputError(
                    f"{self.out_dir}: holds a propagation with other settings or inputs (differs in: "
                    f"{', '.join(diff[:8])}); refusing to resume into it. Use another --out, or --overwrite to start over"
                )
            if old.get("key") != self.key:  # an earlier run that wrote no mask: nothing to keep
                self._write_state()
        elif has_masks:
            raise PropagateInputError(
                f"{self.masks_dir}: holds masks but no resume state ({state_file}); refusing to mix them with "
                "a new propagation. Use another --out, or --overwrite to start over"
            )
        else:
            self._write_state()
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.masks_dir)
        remove_stale_temporaries(self.state_dir / SOFT_DIR)
        return self.finished()

    def _write_state(self, **extra: Any) -> None:
        write_json(self.state_dir / STATE_FILE, {"version": STATE_VERSION, "key": self.key, "record": self.record, **extra})

    def mark_end(self, frames: int) -> None:
        """Record that the video has ``frames`` frames (its end was reached), so a rerun that finds them
        all finished need not load the networks."""
        self._write_state(video_frames=int(frames))

    def known_end(self) -> int | None:
        """The video's frame count recorded by :meth:`mark_end`, or None."""
        try:
            value = json.loads((self.state_dir / STATE_FILE).read_text(encoding="utf-8")).get("video_frames")
        except (OSError, ValueError):
            return None
        return int(value) if isinstance(value, int) else None

    def finished(self) -> int:
        """n such that masks ``0 .. n-1`` all exist (frames finish in order)."""
        n = 0
        while mask_path(self.out_dir, n).is_file():
            n += 1
        return n

    # ------------------------------------------------------------------------------ soft labels
    def save_soft(self, t: int, soft: np.ndarray) -> None:
        """Write frame ``t``'s (h, w, K) float32 soft labels atomically."""
        with atomic_path(self.soft_path(t)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(soft, dtype=np.float32))

    def load_soft(self, t: int, shape: tuple[int, int, int]) -> np.ndarray | None:
        """Frame ``t``'s saved soft labels, or None when missing or not of ``shape`` (h, w, K)."""
        path = self.soft_path(t)
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            if path.exists():
                logger.warning("%s: unreadable soft labels (%s)", path, exc)
            return None
        if arr.shape != shape or arr.dtype != np.float32:
            logger.warning("%s: soft labels of shape %s %s, expected %s float32", path, arr.shape, arr.dtype, shape)
            return None
        return arr

    def forget_soft(self, t: int) -> None:
        """Delete frame ``t``'s soft labels (it has left every later frame's context)."""
        if t >= 0:
            self.soft_path(t).unlink(missing_ok=True)

    def keep_only_soft(self, frames: range) -> None:
        """Delete every soft-label file outside ``frames``."""
        folder = self.state_dir / SOFT_DIR
        if not folder.is_dir():
            return
        for p in folder.glob("*.npy"):
            if not (p.stem.isdigit() and int(p.stem) in frames):
                p.unlink(missing_ok=True)
