"""Data of FC training: a seeded, resumable stream of frames, their two crops, and the step sampler.

The frames form an endless stream of per-epoch permutations, each seeded by ``(seed, epoch)``; step
``s`` consumes stream positions ``[s * B, (s + 1) * B)`` and the crops of position ``p`` are drawn from
a generator seeded by ``(seed, p)``. The data of a step therefore depends only on the seed and the step,
whatever the number of DataLoader workers, processes or restarts, and resuming needs nothing but the
step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from sfc.data.crops import TwoCropsWithCoords
from sfc.training.config import FCTrainConfig

__all__ = ["FrameDataset", "StepSampler", "build_frame_dataset", "collate_crops"]


def _derived_seed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from ``seed`` and a key (independent streams per key).

    Args:
        seed: the run's seed.
        *key: the stream (e.g. ``(0, epoch)`` for the order, ``(1, position)`` for crops).

    Returns:
        A non-negative integer below ``2**63``.
    """
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class _TooSmall(Exception):
    """A frame below ``min_size``."""


class FrameDataset(Dataset):
    """Frames of an endless seeded stream, each returned as two crops with their boxes.

    The dataset is indexed by *stream position* ``p >= 0`` (not by frame): epoch ``p // N`` is a
    permutation of the N frames seeded by ``(seed, epoch)``, and the crops of position ``p`` come from a
    generator seeded by ``(seed, p)``. A frame that cannot be read (missing, corrupt, not an image) or
    whose shorter side is below ``min_size`` is skipped: the next frame of the list is used instead (same
    crop generator), and the skip is reported in the sample's ``skipped`` entry.

    Args:
        paths: frame files (any format PIL reads; converted to RGB).
        crops: the two-view transform (default: the paper's, 256 px, scale [0, 1], no flip).
        seed: seed of the order and the crops.
        min_size: minimum shorter side in pixels.
        max_consecutive_skips: give up (RuntimeError) after this many unusable frames in a row.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        crops: TwoCropsWithCoords | None = None,
        *,
        seed: int = 0,
        min_size: int = 2,
        max_consecutive_skips: int = 100,
    ) -> None:
        if len(paths) == 0:
            raise ValueError("FrameDataset needs at least one frame path")
        self.paths = [str(p) for p in paths]
        self.crops = crops if crops is not None else TwoCropsWithCoords()
        self.seed = seed
        self.min_size = max(2, int(min_size))
        self.max_consecutive_skips = max_consecutive_skips
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        """Frames per epoch (positions are unbounded)."""
        return len(self.paths)

    def frame_index(self, position: int) -> int:
        """Index into ``paths`` of stream position ``position``."""
        epoch, offset = divmod(int(position), len(self.paths))
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(_derived_seed(self.seed, 0, epoch))
            self._perm = torch.randperm(len(self.paths), generator=gen).numpy()
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def _load(self, index: int) -> Image.Image:
        path = self.paths[index]
        with Image.open(path) as img:
            rgb = img.convert("RGB")  # forces the full decode inside the try of the caller
        if min(rgb.size) < self.min_size:
            raise _TooSmall(f"{rgb.size[0]}x{rgb.size[1]} px, shorter side below min_size {self.min_size}")
        return rgb

    def __getitem__(self, position: int) -> dict[str, Any]:
        """Two crops of the frame at stream position ``position``.

        Returns:
            ``{'view1', 'view2': (3, S, S) float32, 'box1', 'box2': (4,) float32, 'position': int,
            'frame': int (index into paths), 'skipped': list of "path: reason" strings}``.

        Raises:
            RuntimeError: ``max_consecutive_skips`` unusable frames in a row.
        """
        index = self.frame_index(position)
        skipped: list[str] = []
        for attempt in range(self.max_consecutive_skips):
            candidate = (index + attempt) % len(self.paths)
            try:
                img = self._load(candidate)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, _TooSmall) as exc:
                skipped.append(f"{self.paths[candidate]}: {type(exc).__name__}: {exc}")
                continue
            gen = torch.Generator().manual_seed(_derived_seed(self.seed, 1, int(position)))
            pair = self.crops(img, gen)
            return {
                "view1": pair.view1,
                "view2": pair.view2,
                "box1": pair.box1,
                "box2": pair.box2,
                "position": int(position),
                "frame": candidate,
                "skipped": skipped,
            }
        raise RuntimeError(
            f"{self.max_consecutive_skips} consecutive frames could not be used, starting at "
            f"{self.paths[index]}; e.g. {skipped[0]}. Check the frame list."
        )


def collate_crops(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack :class:`FrameDataset` samples; ``skipped`` lists are concatenated.

    Args:
        samples: ``b`` samples of :meth:`FrameDataset.__getitem__`.

    Returns:
        ``{'view1', 'view2': (b, 3, S, S), 'box1', 'box2': (b, 4), 'position', 'frame': (b,) long,
        'skipped': list of str}``.
    """
    out: dict[str, Any] = {
        k: torch.stack([s[k] for s in samples]) for k in ("view1", "view2", "box1", "box2")
    }
    out["position"] = torch.tensor([s["position"] for s in samples], dtype=torch.long)
    out["frame"] = torch.tensor([s["frame"] for s in samples], dtype=torch.long)
    out["skipped"] = [msg for s in samples for msg in s["skipped"]]
    return out


class StepSampler(Sampler[int]):
    """Stream positions of steps ``[start_step, end_step)`` for one rank.

    Step ``s`` covers positions ``[s * B, (s + 1) * B)``; rank ``r`` of ``world_size`` takes the
    contiguous slice ``[s * B + r * b, s * B + (r + 1) * b)`` with ``b = B / world_size``, so a
    DataLoader with ``batch_size=b`` yields exactly one step's shard per batch.

    Args:
        start_step: first step (inclusive).
        end_step: last step (exclusive).
        batch_size: the global batch ``B``.
        rank: this process's rank.
        world_size: number of processes; must divide ``batch_size``.

    Raises:
        ValueError: ``batch_size`` not divisible by ``world_size``.
    """

    def __init__(
        self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        self.start_step, self.end_step = start_step, end_step
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.per_rank = batch_size // world_size

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            first = step * self.batch_size + self.rank * self.per_rank
            yield from range(first, first + self.per_rank)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.per_rank


def build_frame_dataset(frame_paths: Sequence[str | os.PathLike[str]], config: FCTrainConfig) -> FrameDataset:
    """The seeded frame stream of ``config`` (crops, seed, min_size).

    Args:
        frame_paths: frame files, in the order that seeds the stream.
        config: uses ``image_size``, ``scale_min``/``scale_max``, ``flip``, ``seed``, ``min_size``.

    Returns:
        A :class:`FrameDataset`.
    """
    crops = TwoCropsWithCoords(
        config.image_size, scale=(config.scale_min, config.scale_max), flip=config.flip
    )
    return FrameDataset(frame_paths, crops, seed=config.seed, min_size=config.min_size)
