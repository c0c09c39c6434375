"""A content-keyed on-disk cache of dense backbone features, one memory-mapped ``.npy`` per video.

Label propagation reads every frame's features many times (each query frame attends to the first
frame and ``context`` preceding frames), and one DAVIS evaluation with a ResNet-50 spends most of its
time in the network. Features depend only on *what* computed them, so they are keyed by content:

* ``arch``: the backbone architecture (``resnet18``, ``vit_small_patch8`` ...);
* ``weights``: ``sha256:<64 hex>`` of the checkpoint **file bytes** (a retrained checkpoint at the same
  path is a new key), or ``random:seed<N>`` for a random init;
* ``scale``: the pre-network resize factor (``davis.scale``);
* ``layer``: which features (``layer3`` of the stride-8 ResNets, ``patch_tokens`` of the ViTs).

Layout under the cache root (one folder per key, :attr:`FeatureKey.slug`)::

    <root>/resnet18-sha256_3f2a9c1b7d4e-s0.5-layer3/bear.npy    (T, C, h, w) float16, frame order
    <root>/resnet18-sha256_3f2a9c1b7d4e-s0.5-layer3/bear.json   metadata: full key, frames, shape ...

The JSON is written last, atomically: its presence marks a complete entry. The ``.npy`` is streamed
frame by frame into a temporary file (``np.lib.format.open_memmap``) and renamed, so a crash leaves
either the previous entry or nothing, never a partial one, and a whole video is never held in RAM.
Features are stored as float16 (half the disk and page cache of float32); reading re-normalises each
vector to unit L2 norm over channels, so the rounding error of the cosine similarities stays ~1e-3.

Errors are loud and say what to do: no entry -> :class:`MissingFeaturesError`; an entry that exists
but was computed by another checkpoint, for other frames, or is corrupt -> :class:`StaleFeaturesError`.
Both name the file and the command that rebuilds the cache (``kedro run --pipelines cache_features``).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfc.atomic import atomic_path, write_json
from sfc.config import BackboneConfig, SemanticConfig
from sfc.models.checkpoints import arch_family, file_sha256

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "CachedFeatures",
    "FeatureCache",
    "FeatureCacheError",
    "FeatureEntry",
    "FeatureKey",
    "MissingFeaturesError",
    "PutResult",
    "StaleFeaturesError",
    "backbone_key",
    "feature_layer",
]

FORMAT_VERSION = 1
"""Version of the on-disk entry format; entries of another version are stale."""

DTYPE = np.float16
"""Storage dtype of the cached features."""

REBUILD_HINT = "rerun `kedro run --pipelines cache_features` with the same davis/backbone/semantic parameters"

_WEIGHTS_RE = re.compile(r"^(sha256:[0-9a-f]{64}|random:seed-?\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FeatureCacheError(ValueError):
    """Base class of the feature-cache errors (also a ``ValueError``)."""


class MissingFeaturesError(FeatureCacheError, LookupError):
    """No cached entry for (key, sequence), or the entry holds fewer frames than requested."""


class StaleFeaturesError(FeatureCacheError):
    """An entry exists but disagrees with what is asked: other checkpoint, other frames, corrupt file."""


def feature_layer(arch: str) -> str:
    """Name of the features a backbone of ``arch`` outputs at test time.

    Args:
        arch: architecture name (``resnet18``, ``resnet50``, ``vit_small_patch16`` ...).

    Returns:
        ``"layer3"`` for the stride-8 ResNets (layer4 removed), ``"patch_tokens"`` for the ViTs.

    Raises:
        ValueError: unknown architecture.
    """
    return "layer3" if arch_family(arch) == "resnet" else "patch_tokens"


@dataclass(frozen=True)
class FeatureKey:
    """What computed a set of features; equal keys give identical features.

    Attributes:
        arch: backbone architecture.
        weights: ``"sha256:<64 hex>"`` of the checkpoint file, or ``"random:seed<N>"``.
        scale: pre-network resize factor (> 0).
        layer: feature layer, see :func:`feature_layer`.
    """

    arch: str
    weights: str
    scale: float
    layer: str

    def __post_init__(self) -> None:
        if not self.arch or not isinstance(self.arch, str):
            raise ValueError(f"FeatureKey.arch must be a non-empty string, got {self.arch!r}")
        if not isinstance(self.weights, str) or not _WEIGHTS_RE.match(self.weights):
            raise ValueError(
                f"FeatureKey.weights must be 'sha256:<64 lowercase hex>' or 'random:seed<N>', got {self.weights!r}"
            )
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"FeatureKey.scale must be a finite number > 0, got {self.scale!r}")
        object.__setattr__(self, "scale", scale)  # 1 and 1.0 are the same key
        if not self.layer or not isinstance(self.layer, str):
            raise ValueError(f"FeatureKey.layer must be a non-empty string, got {self.layer!r}")

    @property
    def short_weights(self) -> str:
        """``sha256:3f2a9c1b7d4e`` (12 hex digits) or ``random:seed0``, for logs."""
        return self.weights[:19] if self.weights.startswith("sha256:") else self.weights

    @property
    def slug(self) -> str:
        """Filesystem-safe folder name, e.g. ``resnet18-sha256_3f2a9c1b7d4e-s0.5-layer3``.

        Only 12 hex digits of the hash appear here; the full hash is in every entry's metadata and is
        what :class:`FeatureCache` compares.
        """
        parts = (self.arch, self.short_weights.replace(":", "_"), f"s{self.scale:g}", self.layer)
        return "-".join(_UNSAFE.sub("_", p) for p in parts)

    def to_dict(self) -> dict[str, Any]:
        """``{"arch", "weights", "scale", "layer"}`` (JSON-ready)."""
        return {"arch": self.arch, "weights": self.weights, "scale": self.scale, "layer": self.layer}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureKey:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["arch"]), str(data["weights"]), float(data["scale"]), str(data["layer"]))


def backbone_key(network: BackboneConfig | SemanticConfig, scale: float, *, name: str = "backbone") -> FeatureKey:
    """The cache key of a configured network, without building or loading the model.

    Args:
        network: the ``backbone`` / ``semantic`` parameter group (arch, checkpoint or None, seed).
        scale: pre-network resize factor (``davis.scale``).
        name: parameter group, used in error messages (``backbone`` / ``semantic``).

    Returns:
        The :class:`FeatureKey`; ``weights`` is the SHA-256 of the checkpoint file's bytes, so a file
        rewritten in place gets a new key.

    Raises:
        FileNotFoundError: the checkpoint file does not exist (names the path and the parameter).
        ValueError: a null ``arch`` or ``scale`` <= 0.
    """
    if not network.arch:
        raise ValueError(f"{name}.arch is required to key cached features, got {network.arch!r}")
    arch = str(network.arch)
    layer = feature_layer(arch)
    if network.checkpoint is None:
        weights = f"random:seed{int(network.seed)}"
    else:
        path = Path(network.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: checkpoint file not found (parameter {name}.checkpoint); expected a {arch} "
                f"checkpoint file, or {name}.checkpoint: null for a random init"
            )
        weights = f"sha256:{file_sha256(path)}"
    return FeatureKey(arch=arch, weights=weights, scale=scale, layer=layer)


@dataclass
class FeatureEntry:
    """One (backbone, sequence) entry to write: its key, frames and a lazy stream of features.

    Attributes:
        key: what computes the features.
        sequence: sequence name (file stem of the entry).
        frames: frame stems in temporal order (length T).
        features: iterable yielding (C, h, w) float L2-normalised features, one per frame, in frame
            order; consumed once, while writing (a generator computes nothing before that).
        source: checkpoint path, recorded in the metadata (informational).
    """

    key: FeatureKey
    sequence: str
    frames: list[str]
    features: Iterable[torch.Tensor]
    source: str | None = None


@dataclass(frozen=True)
class PutResult:
    """Outcome of :meth:`FeatureCache.write`.

    Attributes:
        key: the entry's key.
        sequence: the entry's sequence.
        nbytes: size of the ``.npy`` file.
        seconds: wall time spent computing and writing.
        shape: (T, C, h, w) stored.
    """

    key: FeatureKey
    sequence: str
    nbytes: int
    seconds: float
    shape: tuple[int, ...]


class CachedFeatures:
    """Read handle on one cached sequence; frames are read from the memory map on demand.

    Attributes:
        key: what computed the features.
        sequence: sequence name.
        frames: frame stems served (a prefix of the cached ones), length T.
        path: the ``.npy`` file.
    """

    def __init__(
        self, key: FeatureKey, sequence: str, frames: list[str], array: np.ndarray, path: Path
    ) -> None:
        """Wrap a (T, C, h, w) float16 memory map whose first axis matches ``frames``."""
        if array.ndim != 4 or array.shape[0] != len(frames):
            raise ValueError(f"{path}: expected a (T={len(frames)}, C, h, w) array, got shape {array.shape}")
        self.key = key
        self.sequence = sequence
        self.frames = list(frames)
        self.path = path
        self._array = array

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, C, h, w)."""
        return tuple(int(s) for s in self._array.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        """Number of frames T."""
        return int(self._array.shape[0])

    def frame(self, t: int) -> torch.Tensor:
        """Features of frame ``t``.

        Args:
            t: frame index in ``[-T, T)``.

        Returns:
            (C, h, w) float32, re-normalised to unit L2 norm over C (undoes the float16 rounding of
            the norm); all-zero vectors stay zero.
        """
        n = len(self)
        if not -n <= t < n:
            raise IndexError(f"frame index {t} out of range for {n} cached frames of {self.sequence!r}")
        feats = torch.from_numpy(np.asarray(self._array[t], dtype=np.float32))
        return F.normalize(feats, dim=0)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """``frame(0), frame(1), ...``."""
        for t in range(len(self)):
            yield self.frame(t)

    def numpy(self) -> np.ndarray:
        """The raw read-only float16 memory map, (T, C, h, w)."""
        return self._array

    def __repr__(self) -> str:
        return f"CachedFeatures({self.key.slug}/{self.sequence}, shape={self.shape})"


def _first_difference(cached: list[str], wanted: list[str]) -> int | None:
    """Index of the first frame where ``wanted`` disagrees with ``cached`` (None = ``wanted`` is a prefix)."""
    for i, (a, b) in enumerate(zip(cached, wanted, strict=False)):
        if a != b:
            return i
    return None if len(wanted) <= len(cached) else len(cached)


class FeatureCache:
    """Content-keyed feature store under ``root`` (see the module docstring for the layout).

    Args:
        root: cache folder; created on the first :meth:`write`.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # ------------------------------------------------------------------------------------- paths

    def entry_paths(self, key: FeatureKey, sequence: str) -> tuple[Path, Path]:
        """``(<root>/<slug>/<sequence>.npy, <root>/<slug>/<sequence>.json)``.

        Raises:
            ValueError: ``sequence`` is empty, starts with a dot or holds a path separator.
        """
        if not sequence or sequence.startswith(".") or "/" in sequence or "\\" in sequence:
            raise ValueError(f"sequence name {sequence!r} cannot be a cache file name")
        folder = self.root / key.slug
        return folder / f"{sequence}.npy", folder / f"{sequence}.json"

    # ------------------------------------------------------------------------------------- reading

    def _read_meta(self, json_path: Path) -> dict[str, Any]:
        """Parse an entry's JSON; any problem -> :class:`StaleFeaturesError` naming the file."""
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StaleFeaturesError(f"{json_path}: unreadable feature-cache metadata ({exc}); {REBUILD_HINT}") from exc
        required = ("format_version", "arch", "weights", "scale", "layer", "sequence", "frames", "shape", "dtype")
        missing = [k for k in required if k not in meta] if isinstance(meta, dict) else list(required)
        if missing:
            raise StaleFeaturesError(f"{json_path}: feature-cache metadata lacks {missing}; {REBUILD_HINT}")
        return meta

    def _load_entry(self, key: FeatureKey, sequence: str) -> tuple[dict[str, Any], np.ndarray]:
        """Metadata and memory map of a complete entry, every consistency check done.

        Raises:
            MissingFeaturesError: no JSON (no complete entry).
            StaleFeaturesError: the JSON disagrees with ``key`` / ``sequence`` / the format version,
                or the ``.npy`` is missing, truncated or of another shape / dtype than recorded.
        """
        npy, js = self.entry_paths(key, sequence)
        if not js.is_file():
            raise MissingFeaturesError(f"{js}: no cached features")
        meta = self._read_meta(js)
        if meta["format_version"] != FORMAT_VERSION:
            raise StaleFeaturesError(
                f"{js}: cache format version {meta['format_version']}, this code reads version {FORMAT_VERSION}; "
                f"{REBUILD_HINT}"
            )
        found = {k: meta[k] for k in ("arch", "weights", "scale", "layer")}
        if found != key.to_dict() or meta["sequence"] != sequence:
            # Only possible on a 12-hex slug collision or a hand-edited file.
            raise StaleFeaturesError(
                f"{js}: entry is for {found} / sequence {meta['sequence']!r}, expected {key.to_dict()} / "
                f"sequence {sequence!r}; {REBUILD_HINT}"
            )
        shape = tuple(int(s) for s in meta["shape"])
        if len(shape) != 4 or shape[0] != len(meta["frames"]) or meta["dtype"] != np.dtype(DTYPE).name:
            raise StaleFeaturesError(
                f"{js}: inconsistent metadata (shape {shape}, {len(meta['frames'])} frames, dtype {meta['dtype']}); "
                f"{REBUILD_HINT}"
            )
        try:
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise StaleFeaturesError(f"{npy}: feature file missing although {js.name} exists; {REBUILD_HINT}") from exc
        except (OSError, ValueError, EOFError) as exc:  # truncated data or header
            raise StaleFeaturesError(
                f"{npy}: unreadable or truncated feature file, expected {shape} {meta['dtype']} ({exc}); {REBUILD_HINT}"
            ) from exc
        if tuple(array.shape) != shape or array.dtype != DTYPE:
            raise StaleFeaturesError(
                f"{npy}: expected shape {shape} dtype {meta['dtype']} as recorded in {js.name}, found shape "
                f"{tuple(array.shape)} dtype {array.dtype}; {REBUILD_HINT}"
            )
        return meta, array

    def has(self, key: FeatureKey, sequence: str, frames: list[str]) -> bool:
        """True if a valid entry exists whose cached frames start with ``frames``.

        A prefix is enough: features of all frames serve a ``davis.max_frames`` run.
        """
        try:
            meta, _ = self._load_entry(key, sequence)
        except FeatureCacheError:
            return False
        return _first_difference(list(meta["frames"]), list(frames)) is None

    def _other_entries(self, key: FeatureKey, sequence: str) -> list[tuple[Path, dict[str, Any]]]:
        """Complete entries of ``sequence`` under other keys, newest first."""
        found: list[tuple[Path, dict[str, Any]]] = []
        if not self.root.is_dir():
            return found
        for js in self.root.glob(f"*/{glob.escape(sequence)}.json"):
            if js.parent.name == key.slug:
                continue
            try:
                found.append((js, self._read_meta(js)))
            except StaleFeaturesError:
                continue
        return sorted(found, key=lambda e: str(e[1].get("created", "")), reverse=True)

    def open(self, key: FeatureKey, sequence: str, frames: list[str] | None = None) -> CachedFeatures:
        """Open the cached features of one sequence (memory-mapped, read-only).

        Args:
            key: what must have computed the features.
            sequence: sequence name.
            frames: frame stems wanted (the cached list must start with them); None = all cached frames.

        Returns:
            A :class:`CachedFeatures` over the first ``len(frames)`` cached frames.

        Raises:
            StaleFeaturesError: no entry for ``key`` but the sequence is cached for another checkpoint
                of the same arch / scale / layer (both hashes named); the cached frames differ from
                ``frames``; or the entry's files are corrupt.
            MissingFeaturesError: no entry at all, or fewer cached frames than ``frames``.
        """
        npy, js = self.entry_paths(key, sequence)
        if not js.is_file():
            others = self._other_entries(key, sequence)
            same = [
                (p, m)
                for p, m in others
                if (m["arch"], float(m["scale"]), m["layer"]) == (key.arch, key.scale, key.layer)
            ]
            if same:
                other_js, meta = same[0]
                source = f" (from {meta['source']})" if meta.get("source") else ""
                raise StaleFeaturesError(
                    f"{other_js}: features of sequence {sequence!r} were cached for {key.arch} weights "
                    f"{meta['weights']}{source}, but the configured checkpoint is {key.weights} (another "
                    f"checkpoint: {js} does not exist); {REBUILD_HINT}"
                )
            hint = ""
            if others:
                hint = " (cached under other keys: " + ", ".join(p.parent.name for p, _ in others[:3]) + ")"
            raise MissingFeaturesError(
                f"{js}: no cached features of sequence {sequence!r} for {key.arch} weights {key.weights}, "
                f"scale {key.scale:g}, layer {key.layer}{hint}; expected {npy} and {js.name}. Run "
                f"`kedro run --pipelines cache_features` with the same davis/backbone/semantic parameters"
            )
        meta, array = self._load_entry(key, sequence)
        cached = list(meta["frames"])
        wanted = cached if frames is None else list(frames)
        diff = _first_difference(cached, wanted)
        if diff is not None and diff < len(cached):
            raise StaleFeaturesError(
                f"{js}: cached frames of sequence {sequence!r} differ from the requested ones at position "
                f"{diff}: cached {cached[diff]!r}, requested {wanted[diff]!r}; {REBUILD_HINT}"
            )
        if diff is not None:
            raise MissingFeaturesError(
                f"{js}: {len(cached)} frames of sequence {sequence!r} are cached (up to {cached[-1]!r}), "
                f"{len(wanted)} requested (up to {wanted[-1]!r}); {REBUILD_HINT}"
            )
        if not wanted:
            raise ValueError(f"{js}: expected at least one requested frame, got an empty list")
        return CachedFeatures(key, sequence, wanted, array[: len(wanted)], npy)

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every complete entry (JSON and ``.npy`` present), sorted by folder and sequence.

        Each dict is the entry's JSON plus ``path`` (the ``.npy``) and ``nbytes`` (its size).
        Unreadable JSON files are skipped with a warning.
        """
        out: list[dict[str, Any]] = []
        if not self.root.is_dir():
            return out
        for js in sorted(self.root.glob("*/*.json")):
            if js.name.startswith("."):
                continue
            npy = js.with_suffix(".npy")
            try:
                meta = self._read_meta(js)
                nbytes = npy.stat().st_size
            except (StaleFeaturesError, FileNotFoundError) as exc:
                logger.warning("Skipping incomplete feature-cache entry %s: %s", js, exc)
                continue
            out.append({**meta, "path": str(npy), "nbytes": nbytes})
        return out

    def size_bytes(self, key: FeatureKey, sequence: str) -> int:
        """Size of the entry's ``.npy`` file in bytes.

        Raises:
            MissingFeaturesError: no such file.
        """
        npy, _ = self.entry_paths(key, sequence)
        try:
            return npy.stat().st_size
        except FileNotFoundError as exc:
            raise MissingFeaturesError(f"{npy}: no cached features; {REBUILD_HINT}") from exc

    # ------------------------------------------------------------------------------------- writing

    def write(self, entry: FeatureEntry) -> PutResult:
        """Store one entry, consuming its feature stream frame by frame.

        Features are streamed into a temporary ``.npy`` (float16, (T, C, h, w) known after the first
        frame), flushed and renamed (:func:`sfc.atomic.atomic_path`); the JSON metadata is written
        last. A previous entry's JSON is removed before its ``.npy`` is replaced, so a crash never
        leaves a JSON describing other data. On any exception the temporary file is removed and the
        exception propagates.

        Raises:
            ValueError: ``entry.frames`` is empty.
            FeatureCacheError: the stream yielded another number of frames than ``len(entry.frames)``,
                frames of differing shapes, non-3-D or non-finite tensors.
        """
        key, seq, frames = entry.key, entry.sequence, list(entry.frames)
        npy, js = self.entry_paths(key, seq)
        what = f"sequence {seq!r}, backbone {key.slug}"
        if not frames:
            raise ValueError(f"{what}: expected at least one frame to cache, got none")
        t0 = time.perf_counter()
        n_frames = len(frames)
        stream = iter(entry.features)
        try:
            with atomic_path(npy, durable=True) as tmp:
                array: np.ndarray | None = None
                count = 0
                for feats in stream:
                    if count >= n_frames:
                        raise FeatureCacheError(f"{what}: the stream yielded more than the {n_frames} expected frames")
                    f = feats.detach().to("cpu") if isinstance(feats, torch.Tensor) else torch.as_tensor(feats)
                    if f.ndim != 3:
                        raise FeatureCacheError(
                            f"{what}: frame {frames[count]!r}: expected (C, h, w) features, got shape {tuple(f.shape)}"
                        )
                    if array is None:
                        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=(n_frames, *f.shape))
                    elif tuple(f.shape) != array.shape[1:]:
                        raise FeatureCacheError(
                            f"{what}: frame {frames[count]!r} has features of shape {tuple(f.shape)}, frame "
                            f"{frames[0]!r} had {array.shape[1:]}; all frames of a sequence must share one size"
                        )
                    if not bool(torch.isfinite(f).all()):
                        raise FeatureCacheError(f"{what}: frame {frames[count]!r}: non-finite features")
                    array[count] = f.to(torch.float32).numpy()
                    count += 1
                if count != n_frames:
                    raise FeatureCacheError(
                        f"{what}: the stream yielded {count} frames, expected {n_frames} ({frames[0]!r}...)"
                    )
                assert array is not None
                array.flush()
                shape = tuple(int(s) for s in array.shape)
                del array  # release the memory map before the rename
                # No JSON = no entry: drop the old one's marker before its data is replaced.
                js.unlink(missing_ok=True)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # restores the model's mode in iter_features; no-op when exhausted
                close()
        meta = {
            "format_version": FORMAT_VERSION,
            **key.to_dict(),
            "sequence": seq,
            "frames": frames,
            "shape": list(shape),
            "dtype": np.dtype(DTYPE).name,
            "source": entry.source,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(js, meta, indent=1, durable=True)
        seconds = time.perf_counter() - t0
        nbytes = npy.stat().st_size
        logger.debug("Cached %s/%s: %s, %d bytes in %.2f s", key.slug, seq, shape, nbytes, seconds)
        return PutResult(key, seq, nbytes, seconds, shape)
