"""Evaluate a folder of DAVIS-2017 semi-supervised results like the official ``davis2017-evaluation``.

Layout expected (the one the official evaluator reads)::

    <davis_root>/JPEGImages/480p/<seq>/<frame>.jpg     frames (define the frame list)
    <davis_root>/Annotations/480p/<seq>/<frame>.png    ground-truth palette PNGs
    <davis_root>/ImageSets/2017/<split>.txt            sequence names
    <results_dir>/<seq>/<frame>.png                    predicted palette PNGs (ids = object ids)

Only frames ``1..T-2`` of the results are read (the first frame is the given annotation and the last
frame is not evaluated), so the results for the first and last frames may be absent. A missing
sequence folder or evaluated frame is an error naming the file, as the official evaluator refuses
incomplete results. Sequences are evaluated in parallel worker processes.

The numbers come from :mod:`sfc.metrics.davis`; :func:`write_result_tables` writes the two CSV files in
the official format (``global_results-<split>.csv``, ``per-sequence_results-<split>.csv``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sfc.data.davis import (
    JPEG_DIR,
    DavisFormatError,
    list_frames,
    read_annotations,
    read_mask,
    resolve_sequences,
)
from sfc.metrics.davis import ObjectScores, evaluate_sequence, global_table, summarize

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_FLOAT_FORMAT",
    "evaluate_results",
    "evaluate_sequences",
    "evaluate_one_sequence",
    "result_table_paths",
    "write_result_tables",
]

PathLike = str | os.PathLike[str]

CSV_FLOAT_FORMAT = "%.3f"
"""Float format of the official CSV files (``DataFrame.to_csv(float_format="%.3f")``)."""


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
        ``{object_id: ObjectScores}`` (see :func:`sfc.metrics.davis.evaluate_sequence`).

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
    """Evaluate a results folder against a DAVIS root (semi-supervised task).

    Args:
        davis_root: DAVIS root with ``JPEGImages/480p``, ``Annotations/480p`` and ``ImageSets/2017``.
        results_dir: Folder with ``<seq>/<frame>.png`` palette PNG predictions.
        split: Split name (``ImageSets/2017/<split>.txt``), used when ``sequences`` is None.
        sequences: Explicit sequence names (subset evaluation), or None for the whole split.
        workers: Worker processes (default ``os.cpu_count()``).
        progress: Show a tqdm progress bar.

    Returns:
        ``(global_dict, per_object_df)`` as :func:`sfc.metrics.davis.summarize`: keys ``JF_mean``,
        ``J_mean``, ``J_recall``, ``J_decay``, ``F_mean``, ``F_recall``, ``F_decay`` (fractions) and a
        table with columns ``Sequence`` (``<seq>_<id>``), ``J-Mean``, ``F-Mean``.

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
        global_dict["JF_mean"],
        global_dict["J_mean"],
        global_dict["F_mean"],
        len(per_object),
    )
    return global_dict, per_object


def result_table_paths(out_dir: PathLike, split: str) -> tuple[Path, Path]:
    """Paths of the official CSV files: ``(global_results-<split>.csv, per-sequence_results-<split>.csv)``."""
    out = Path(out_dir)
    return out / f"global_results-{split}.csv", out / f"per-sequence_results-{split}.csv"


def _write_text_atomic(path: Path, text: str) -> None:
    # Temp file in the same directory so os.replace is an atomic rename on the same filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result_tables(
    out_dir: PathLike, global_dict: Mapping[str, float], per_object_df: pd.DataFrame, split: str
) -> tuple[Path, Path]:
    """Write the official ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    Same columns and float formatting (``%.3f``, no index) as the official evaluator; each file is
    written atomically (temporary file in ``out_dir`` then ``os.replace``).

    Args:
        out_dir: Destination folder (created if missing).
        global_dict: Global numbers from :func:`evaluate_results` / :func:`sfc.metrics.davis.summarize`.
        per_object_df: Per-object table (columns ``Sequence``, ``J-Mean``, ``F-Mean``).
        split: Split name used in the file names.

    Returns:
        ``(global_csv_path, per_sequence_csv_path)``.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    global_path, per_seq_path = result_table_paths(out_dir, split)
    # lineterminator "\n": what the official script produces on Linux (os.linesep).
    global_csv = global_table(global_dict).to_csv(
        index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n"
    )
    per_seq_csv = per_object_df.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")
    _write_text_atomic(global_path, global_csv)
    _write_text_atomic(per_seq_path, per_seq_csv)
    logger.info("Wrote %s and %s", global_path, per_seq_path)
    return global_path, per_seq_path
