"""DAVIS-2017 semi-supervised evaluation: select sequences, propagate masks, score a results folder.

The loop of the benchmark, built on its reader (:mod:`~sfc.evaluation.davis.reader`), its metric
(:mod:`~sfc.evaluation.davis.metric`) and the shared front door (:mod:`sfc.evaluation.common`):

1. :func:`select_sequences` resolves ``davis.*`` into sequence names and validates every frame's
   annotation of every selected sequence before any long work;
2. :func:`predict_sequences` propagates each sequence's first-frame masks and yields full-resolution
   id masks frame by frame (memory does not grow with the video length);
3. :func:`evaluate_results` scores a results folder in the official layout exactly as
   ``davis2017-evaluation`` does, sequences in parallel worker processes, and
   :func:`write_result_tables` writes the official CSV files.

Results layout (the one the official evaluator reads)::

    <results_dir>/<seq>/<frame>.png      predicted palette PNGs (ids = object ids)

Only frames ``1..T-2`` of the results are read (the first frame is the given annotation and the last
frame is not evaluated), so their PNGs may be absent. No Kedro or MLflow here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sfc.atomic import write_text
from sfc.config import DavisConfig, PropagationConfig
from sfc.evaluation.common import (
    FramePrediction,
    Networks,
    PredictionStats,
    iter_frame_features,
    propagate_labels,
)
from sfc.evaluation.davis.metric import ObjectScores, evaluate_sequence, global_table, summarize
from sfc.evaluation.davis.reader import (
    JPEG_DIR,
    DavisFormatError,
    DavisSequence,
    frame_path,
    iter_frames,
    list_frames,
    load_sequence,
    onehot,
    read_annotations,
    read_frame,
    read_mask,
    resolve_sequences,
    validate_annotations,
)
from sfc.propagation.labels import upsample_argmax

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_FLOAT_FORMAT",
    "FramePrediction",
    "evaluate_one_sequence",
    "evaluate_results",
    "evaluate_sequences",
    "iter_result_frames",
    "overlay_samples",
    "predict_sequence",
    "predict_sequences",
    "result_table_paths",
    "select_sequences",
    "write_result_tables",
]

PathLike = str | os.PathLike[str]

CSV_FLOAT_FORMAT = "%.3f"
"""Float format of the official CSV files (``DataFrame.to_csv(float_format="%.3f")``)."""


# ------------------------------------------------------------------------------------------ selection
def select_sequences(davis: DavisConfig) -> list[str]:
    """The sequences ``davis.*`` selects, each validated before any long work starts.

    Every selected sequence is checked in full: frame folder and first frame readable, and the
    annotation of every frame (up to ``davis.max_frames``) present, a palette/greyscale PNG of the
    first frame's size, so a bad file fails now, naming it, and not after the propagation.

    Returns:
        Sequence names, in split (or list) order.

    Raises:
        DavisFormatError: unknown sequences (listed with the available ones) or a bad file.
    """
    names = resolve_sequences(davis.root, davis.split, None if davis.sequences is None else list(davis.sequences))
    frames = 0
    for name in tqdm(names, desc="checking DAVIS sequences", unit="seq", disable=None, leave=False):
        seq = load_sequence(davis.root, name, max_frames=davis.max_frames)
        validate_annotations(seq)
        frames += seq.num_frames
    logger.info("DAVIS %s: %d sequence(s), %d frames from %s (annotations checked)", davis.split, len(names),
                frames, davis.root)
    return names


# ----------------------------------------------------------------------------------------- prediction
def predict_sequence(
    seq: DavisSequence,
    networks: Networks,
    propagation: PropagationConfig,
    *,
    scale: float,
    batch_size: int | None = None,
    stats: PredictionStats | None = None,
    progress: bool = True,
) -> Iterator[FramePrediction]:
    """Propagate the first-frame annotation of ``seq`` through all its frames.

    Args:
        seq: a validated sequence (see :func:`~sfc.evaluation.davis.reader.load_sequence`).
        networks: the network(s) and device (:func:`sfc.evaluation.common.load_networks`); with a
            semantic network the features are late-fused (SFC eq. 7).
        propagation: top-k, temperature, r', m.
        scale: input resize factor before the network(s) (1.0 = native resolution).
        batch_size: frames per forward pass (None: 4 on CUDA, 1 on the CPU).
        stats: filled with frame count and wall time when given.
        progress: show a tqdm bar for the sequence.

    Yields:
        a :class:`FramePrediction` per frame, frame 0 first (its prediction is the annotation resized
        down and up again, as in the official protocol).
    """
    H, W = seq.size
    ids = np.array([0, *seq.object_ids], dtype=np.uint8)
    first = torch.from_numpy(onehot(seq.first_mask, seq.object_ids))
    stats = stats if stats is not None else PredictionStats(seq.name)
    if networks.fused:
        stats.extra["fusion_lambda"] = float(networks.lam)
    stats.labels = len(seq.object_ids)
    t0 = time.perf_counter()
    feats = iter_frame_features(networks, iter_frames(seq), scale=scale, batch_size=batch_size)
    soft_maps = propagate_labels(feats, first, propagation)
    bar = tqdm(total=seq.num_frames, desc=seq.name, unit="frame", disable=not progress, leave=False)
    try:
        for name, soft in zip(seq.frame_names, soft_maps, strict=True):
            if stats.frames == 0:
                stats.feature_size = (int(soft.shape[0]), int(soft.shape[1]))
            pred = upsample_argmax(soft, (H, W)).cpu().numpy()
            stats.frames += 1
            stats.seconds = time.perf_counter() - t0
            bar.update(1)
            yield FramePrediction(seq.name, name, ids[pred])
    finally:
        bar.close()
    logger.info(
        "%s: %d frames, %d objects, features %dx%d, %.2f frames/s",
        seq.name, stats.frames, stats.labels, *stats.feature_size, stats.fps,
    )


def predict_sequences(
    davis: DavisConfig,
    sequences: Sequence[str],
    networks: Networks,
    propagation: PropagationConfig,
    *,
    stats_out: list[PredictionStats] | None = None,
    progress: bool = True,
) -> Iterator[FramePrediction]:
    """:func:`predict_sequence` over several sequences of ``davis.root`` (``davis.max_frames``, ``davis.scale``)."""
    for name in sequences:
        seq = load_sequence(davis.root, name, max_frames=davis.max_frames)
        stats = PredictionStats(name)
        if stats_out is not None:
            stats_out.append(stats)
        yield from predict_sequence(seq, networks, propagation, scale=davis.scale, stats=stats, progress=progress)


# -------------------------------------------------------------------------------------------- scoring
def evaluate_one_sequence(
    davis_root: PathLike, results_dir: PathLike, seq: str, max_frames: int | None = None
) -> dict[int, ObjectScores]:
    """Read the ground truth and results of one sequence and score every object.

    Args:
        davis_root: DAVIS root (``JPEGImages``, ``Annotations``, ``ImageSets``).
        results_dir: Folder holding ``<seq>/<frame>.png`` predictions.
        seq: Sequence name.
        max_frames: Evaluate the video truncated to its first ``max_frames`` frames (as if it ended
            there: the last of them is then not scored, like any last frame). None = all frames.

    Returns:
        ``{object_id: ObjectScores}`` (see :func:`~sfc.evaluation.davis.metric.evaluate_sequence`).

    Raises:
        FileNotFoundError: The results folder or an evaluated results frame is missing.
        DavisFormatError: A mask is unreadable / not a palette PNG, sizes differ from the ground truth,
            or the results contain an object id the first annotation does not have.
    """
    seq_dir = Path(results_dir) / seq
    if not seq_dir.is_dir():
        raise FileNotFoundError(f"{seq_dir}: results folder for sequence {seq!r} not found")
    frames = list_frames(davis_root, seq)
    if max_frames is not None:
        frames = frames[:max_frames]
    if len(frames) < 3:
        raise DavisFormatError(
            f"{Path(davis_root) / JPEG_DIR / seq}: expected at least 3 frames (the first and "
            f"last are not evaluated), found {len(frames)}"
        )
    gt = read_annotations(davis_root, seq, frames)
    # First and last predictions are never scored; leave them empty so they need not exist on disk.
    pred = np.zeros_like(gt)
    for t in range(1, len(frames) - 1):
        path = seq_dir / f"{frames[t]}.png"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: results frame not found (expected one palette PNG per frame {frames[1]}..{frames[-2]} "
                f"of sequence {seq!r})"
            )
        mask = read_mask(path)
        if mask.shape != gt.shape[1:]:
            raise DavisFormatError(
                f"{path}: expected a mask of size (H, W) = {gt.shape[1:]} like the annotation, found {mask.shape}"
            )
        pred[t] = mask
    try:
        return evaluate_sequence(gt, pred)
    except ValueError as exc:  # e.g. a predicted id with no ground-truth object
        raise DavisFormatError(f"{seq_dir}: {exc}") from exc


def evaluate_sequences(
    davis_root: PathLike,
    results_dir: PathLike,
    sequences: Sequence[str],
    *,
    workers: int | None = None,
    progress: bool = True,
    max_frames: int | None = None,
) -> dict[str, dict[int, ObjectScores]]:
    """Score several sequences, in parallel worker processes when ``workers > 1``.

    Args:
        davis_root: DAVIS root.
        results_dir: Results folder.
        sequences: Sequence names; the output keeps this order.
        workers: Number of processes (default ``os.cpu_count()``); ``1`` runs in this process.
        progress: Show a tqdm progress bar.
        max_frames: Truncate every video to its first ``max_frames`` frames (see
            :func:`evaluate_one_sequence`).

    Returns:
        ``{sequence: {object_id: ObjectScores}}`` in the order of ``sequences``.

    Raises:
        FileNotFoundError, DavisFormatError: As :func:`evaluate_one_sequence`, for the first failing
            sequence; the remaining work is cancelled.
    """
    names = list(sequences)
    results_dir = Path(results_dir)
    # Fail fast on missing sequence folders before any worker starts.
    for seq in names:
        if not (results_dir / seq).is_dir():
            raise FileNotFoundError(f"{results_dir / seq}: results folder for sequence {seq!r} not found")
    n_workers = min(workers or os.cpu_count() or 1, max(len(names), 1))
    scores: dict[str, dict[int, ObjectScores]] = {}
    bar = tqdm(total=len(names), desc="DAVIS J&F", unit="seq", disable=not progress)
    try:
        if n_workers <= 1:
            for seq in names:
                scores[seq] = evaluate_one_sequence(davis_root, results_dir, seq, max_frames)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futures = {
                    pool.submit(evaluate_one_sequence, davis_root, results_dir, seq, max_frames): seq for seq in names
                }
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        if fut.exception() is not None:
                            # Drop queued sequences; the context manager waits for running ones.
                            pool.shutdown(wait=False, cancel_futures=True)
                            raise fut.exception()
                        scores[futures[fut]] = fut.result()
                        bar.update(1)
    finally:
        bar.close()
    return {seq: scores[seq] for seq in names}


def evaluate_results(
    davis_root: PathLike,
    results_dir: PathLike,
    *,
    split: str = "val",
    sequences: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Evaluate a results folder against a DAVIS root (semi-supervised task), like the official script.

    Args:
        davis_root: DAVIS root with ``JPEGImages/480p``, ``Annotations/480p`` and ``ImageSets/2017``.
        results_dir: Folder with ``<seq>/<frame>.png`` palette PNG predictions.
        split: Split name (``ImageSets/2017/<split>.txt``), used when ``sequences`` is None.
        sequences: Explicit sequence names (subset evaluation), or None for the whole split.
        workers: Worker processes (default ``os.cpu_count()``).
        progress: Show a tqdm progress bar.

    Returns:
        ``(global_dict, per_object_df)`` as :func:`~sfc.evaluation.davis.metric.summarize`: keys
        ``JF_mean``, ``J_mean``, ``J_recall``, ``J_decay``, ``F_mean``, ``F_recall``, ``F_decay``
        (fractions) and a table with columns ``Sequence`` (``<seq>_<id>``), ``J-Mean``, ``F-Mean``.

    Raises:
        FileNotFoundError: A results folder or evaluated results frame is missing.
        DavisFormatError: The dataset or a results mask is malformed (message names the file).
    """
    names = resolve_sequences(davis_root, split, None if sequences is None else list(sequences))
    logger.info("Evaluating %d sequence(s) of %s against %s", len(names), results_dir, davis_root)
    per_sequence = evaluate_sequences(davis_root, results_dir, names, workers=workers, progress=progress)
    global_dict, per_object = summarize(per_sequence)
    logger.info(
        "J&F-Mean %.3f (J-Mean %.3f, F-Mean %.3f) over %d object(s)",
        global_dict["JF_mean"], global_dict["J_mean"], global_dict["F_mean"], len(per_object),
    )
    return global_dict, per_object


def result_table_paths(out_dir: PathLike, split: str) -> tuple[Path, Path]:
    """Paths of the official CSV files: ``(global_results-<split>.csv, per-sequence_results-<split>.csv)``."""
    out = Path(out_dir)
    return out / f"global_results-{split}.csv", out / f"per-sequence_results-{split}.csv"


def write_result_tables(
    out_dir: PathLike, global_dict: Mapping[str, float], per_object_df: pd.DataFrame, split: str
) -> tuple[Path, Path]:
    """Write the official ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    Same columns and float formatting (``%.3f``, no index, ``\\n`` line ends) as the official
    evaluator on Linux; each file is written atomically.

    Returns:
        ``(global_csv_path, per_sequence_csv_path)``.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    global_path, per_seq_path = result_table_paths(out_dir, split)
    global_csv = global_table(global_dict).to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")
    per_seq_csv = per_object_df.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")
    write_text(global_path, global_csv)
    write_text(per_seq_path, per_seq_csv)
    logger.info("Wrote %s and %s", global_path, per_seq_path)
    return global_path, per_seq_path


def overlay_samples(
    davis_root: PathLike, results_dir: PathLike, sequences: Sequence[str], n_sequences: int
) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """First, middle and last predicted frame of the first ``n_sequences`` sequences, with their frames.

    Returns:
        One row per sequence of ``(title, (H, W, 3) uint8 frame, (H, W) uint8 predicted ids)``, for
        :func:`sfc.viz.figures.overlay_grid`.
    """
    rows = []
    for name in list(sequences)[:n_sequences]:
        frames = sorted(p.stem for p in (Path(results_dir) / name).glob("*.png"))
        if not frames:
            continue
        picks = [frames[0], frames[len(frames) // 2], frames[-1]]
        rows.append([
            (f"{name} / {f}", read_frame(frame_path(davis_root, name, f)), read_mask(Path(results_dir) / name / f"{f}.png"))
            for f in picks
        ])
    return rows


def iter_result_frames(
    davis_root: PathLike, results_dir: PathLike, sequence: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every predicted frame of a sequence with its image, read lazily in temporal order.

    Args:
        davis_root: DAVIS root (frames).
        results_dir: results folder (``<sequence>/<frame>.png``).
        sequence: sequence name.

    Yields:
        ``((H, W, 3) uint8 RGB frame, (H, W) uint8 predicted ids)`` per results PNG (none when the
        sequence has no results folder), one pair in memory at a time, for
        :class:`sfc.viz.video.OverlayVideo`.
    """
    folder = Path(results_dir) / sequence
    frames = sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []
    for f in frames:
        yield read_frame(frame_path(davis_root, sequence, f)), read_mask(folder / f"{f}.png")
