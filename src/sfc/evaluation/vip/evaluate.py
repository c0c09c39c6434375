"""VIP human-part propagation: select videos, propagate part labels, score a predictions folder.

The loop of the benchmark, built on its reader (:mod:`~sfc.evaluation.vip.reader`), its labels
(:mod:`~sfc.evaluation.vip.labels`), its metric (:mod:`~sfc.evaluation.vip.metric`) and the shared
front door (:mod:`sfc.evaluation.common`):

1. :func:`select_videos` resolves ``vip.*`` into video names, each validated up front
   (:func:`~sfc.evaluation.vip.reader.load_video`);
2. :func:`predict_video` encodes the first frame's part ids at the input size (frames squashed to
   ``vip.image_size`` squared, as CRW's ``--cropSize``), propagates them and yields one id map per
   frame at the annotation size, frame 0 included (CRW writes and scores it: the first annotation
   resized down to the feature grid and up again);
3. :func:`score_folder` scores any predictions folder with the official ``eval_vip.py`` file
   semantics, and :func:`evaluate_results` scores this project's results folder.

Predictions layout (the official one; this project writes palette PNGs whose indices are the ids)::

    <pred_dir>/<video>/<frame>.png

File semantics of :func:`score_folder` (official): every file of every sub-folder of the predictions
folder is scored against ``<gt_dir>/<video>/<same file name>``; ground-truth frames without a
prediction are not scored; a prediction whose size differs from its ground truth is resized to it with
Pillow NEAREST. Where the official script crashes or silently miscounts, this module raises a
:class:`~sfc.evaluation.vip.reader.VipFormatError` naming the file instead: a non-PNG file in a video
folder (CRW's ``<frame>.jpg_blend.jpg``: delete those first), a prediction without ground truth, a
colour prediction PNG, a predicted value outside 0..19. Files directly in the predictions folder
(e.g. this project's ``run_info.json``) are not predictions and are skipped. No Kedro or MLflow here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from sfc.config import PropagationConfig, VipConfig
from sfc.evaluation.common import (
    FramePrediction,
    Networks,
    PredictionStats,
    iter_frame_features,
    propagate_labels,
)
from sfc.evaluation.vip.labels import decode_parts, encode_parts, nearest_resize
from sfc.evaluation.vip.metric import ConfusionMatrix, scores
from sfc.evaluation.vip.reader import (
    ANNOTATIONS_DIR,
    CLASSES,
    N_CLASSES,
    VipFormatError,
    VipVideo,
    frame_path,
    iter_frames,
    list_videos,
    load_video,
    read_frame,
    read_labels,
    read_split,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FramePrediction",
    "evaluate_results",
    "input_size",
    "iter_result_frames",
    "overlay_samples",
    "per_class_table",
    "predict_video",
    "predict_videos",
    "read_prediction",
    "score_folder",
    "select_videos",
]

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------------ selection
def select_videos(cfg: VipConfig) -> list[str]:
    """The videos ``vip.*`` selects, each validated before any long work starts.

    ``vip.split`` is a video list (one name per line; absolute or relative to ``vip.root``), or null
    for every folder of ``VIP_Fine/Images``. Each video is checked with
    :func:`~sfc.evaluation.vip.reader.load_video` (up to ``vip.max_frames`` frames).

    Returns:
        Video names, in list (or sorted folder) order.

    Raises:
        VipFormatError: unknown videos (listed) or a bad file (named).
    """
    names = read_split(cfg.root, cfg.split) if cfg.split is not None else list_videos(cfg.root)
    frames = 0
    for name in tqdm(names, desc="checking VIP videos", unit="video", disable=None, leave=False):
        frames += load_video(cfg.root, name, max_frames=cfg.max_frames).num_frames
    logger.info("VIP: %d video(s), %d frames from %s (annotations checked)", len(names), frames, cfg.root)
    return names


def input_size(cfg: VipConfig, video: VipVideo) -> tuple[int, int]:
    """The (H', W') the networks see: ``(image_size, image_size)`` (CRW squashes frames to a square
    ``--cropSize``, whatever the aspect), or the video's own size when ``vip.image_size`` is null."""
    if cfg.image_size is None:
        return (int(video.size[0]), int(video.size[1]))
    return (int(cfg.image_size), int(cfg.image_size))


# ----------------------------------------------------------------------------------------- prediction
def predict_video(
    video: VipVideo,
    networks: Networks,
    propagation: PropagationConfig,
    *,
    size: tuple[int, int],
    batch_size: int | None = None,
    stats: PredictionStats | None = None,
    progress: bool = False,
) -> Iterator[FramePrediction]:
    """Propagate the first frame's part ids of ``video`` through all its frames.

    Args:
        video: a validated video (:func:`~sfc.evaluation.vip.reader.load_video`).
        networks: network(s) and device (:func:`sfc.evaluation.common.load_networks`).
        propagation: top-k, temperature, r', m.
        size: (H', W') input size of the networks (:func:`input_size`); the first labels are
            nearest-resized to it, then bilinearly to the feature grid.
        batch_size: frames per forward pass (None: 4 on CUDA, 1 on the CPU).
        stats: filled with frame count and wall time when given.
        progress: show a tqdm bar for the video.

    Yields:
        a :class:`~sfc.evaluation.common.FramePrediction` per frame, frame 0 first, each (H, W) uint8
        part ids at the annotation size ``video.size``.
    """
    onehot, ids = encode_parts(video.first_labels, size)
    stats = stats if stats is not None else PredictionStats(video.name)
    stats.labels = int(ids.size)
    t0 = time.perf_counter()
    feats = iter_frame_features(networks, iter_frames(video), size=size, batch_size=batch_size)
    soft_maps = propagate_labels(feats, torch.from_numpy(onehot), propagation)
    bar = tqdm(total=video.num_frames, desc=video.name, unit="frame", disable=not progress, leave=False)
    try:
        for name, soft in zip(video.frame_names, soft_maps, strict=True):
            if stats.frames == 0:
                stats.feature_size = (int(soft.shape[0]), int(soft.shape[1]))
            mask = decode_parts(soft, ids, video.size)
            stats.frames += 1
            stats.seconds = time.perf_counter() - t0
            bar.update(1)
            yield FramePrediction(video.name, name, mask)
    finally:
        bar.close()
    logger.info("%s: %d frames, %d parts, features %dx%d, %.2f frames/s", video.name, stats.frames, stats.labels,
                *stats.feature_size, stats.fps)


def predict_videos(
    cfg: VipConfig,
    videos: Sequence[str],
    networks: Networks,
    propagation: PropagationConfig,
    *,
    batch_size: int | None = None,
    stats_out: list[PredictionStats] | None = None,
    progress: bool = True,
) -> Iterator[FramePrediction]:
    """:func:`predict_video` over several videos of ``cfg.root`` (``vip.max_frames``, ``vip.image_size``)."""
    for name in videos:
        video = load_video(cfg.root, name, max_frames=cfg.max_frames)
        stats = PredictionStats(name)
        if stats_out is not None:
            stats_out.append(stats)
        yield from predict_video(video, networks, propagation, size=input_size(cfg, video), batch_size=batch_size,
                                 stats=stats, progress=progress)


# -------------------------------------------------------------------------------------------- scoring
def read_prediction(path: PathLike) -> np.ndarray:
    """Read one predicted part-id PNG.

    Accepted: greyscale (``'L'``, grey level = id), palette (``'P'``, index = id: this project's
    results) and RGB whose three channels are equal (``R = G = B = id``, as CRW ``test.py`` writes).
    The official script reads every prediction as BGR colours and keeps R, so it would score a palette
    PNG's colours; here the index is the id.

    Returns:
        (H, W) uint8 ids, as stored (range not checked here).

    Raises:
        VipFormatError: unreadable, a colour image (channels differ), or another mode.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except FileNotFoundError as exc:
        raise VipFormatError(f"{path}: prediction file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VipFormatError(f"{path}: expected a readable PNG of predicted part ids, found an unreadable image ({exc})") from exc
    if mode in ("L", "P"):
        return np.ascontiguousarray(arr, dtype=np.uint8)
    if mode == "RGB":
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            return np.ascontiguousarray(arr[..., 0], dtype=np.uint8)
        raise VipFormatError(
            f"{path}: expected predicted part ids (a greyscale, palette or R=G=B PNG), found a colour RGB image "
            "whose channels differ: colours are not ids"
        )
    raise VipFormatError(
        f"{path}: expected predicted part ids (a greyscale 'L', palette 'P' or R=G=B 'RGB' PNG), found mode {mode!r}"
    )


def _prediction_files(gt_dir: Path, pred_dir: Path, video: str) -> list[tuple[str, Path, Path]]:
    """(key ``<video>/<file>``, ground truth, prediction) of every file of one video folder."""
    folder = pred_dir / video
    pairs = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        key = f"{video}/{path.name}"
        if path.is_dir():
            raise VipFormatError(f"{path}: expected prediction PNG files in the video folder {folder}, found a folder")
        if path.suffix.lower() != ".png":
            hint = " (CRW test.py writes these visualisations beside the predictions)" if "_blend" in path.name else ""
            raise VipFormatError(
                f"{path}: expected only prediction PNGs in {folder}, found a non-PNG file{hint}; every file there is "
                "scored (official semantics): delete it or move it elsewhere"
            )
        gt = gt_dir / video / path.name
        if not gt.is_file():
            raise VipFormatError(f"{path}: prediction without ground truth: expected {gt}, found no such file")
        pairs.append((key, gt, path))
    return pairs


def _accumulate(pairs: Sequence[tuple[str, Path, Path]], *, progress: bool) -> ConfusionMatrix:
    """One confusion matrix over all (key, gt, pred) files."""
    cm = ConfusionMatrix(N_CLASSES)
    for _, gt_path, pred_path in tqdm(pairs, desc="VIP mIoU", unit="frame", disable=not progress, leave=False):
        gt = read_labels(gt_path)
        pred = read_prediction(pred_path)
        bad = np.unique(pred[pred >= N_CLASSES]).tolist()
        if bad:
            raise VipFormatError(
                f"{pred_path}: expected predicted part ids 0..{N_CLASSES - 1}, found {bad} (the official eval_vip.py "
                "counts 20 as background of the next class and stops on larger values)"
            )
        if pred.shape != gt.shape:
            pred = nearest_resize(pred, gt.shape)  # Pillow NEAREST, as the official script
        cm.update(gt, pred)
    return cm


def score_folder(
    gt_dir: PathLike, pred_dir: PathLike, *, progress: bool = False
) -> tuple[dict[str, Any], np.ndarray, list[str]]:
    """Score a predictions folder like the official ``eval_vip.py -g gt_dir -p pred_dir``.

    Every file in every sub-folder ``<video>`` of ``pred_dir`` is scored against
    ``<gt_dir>/<video>/<file>`` (see the module docstring for the file semantics and the errors that
    replace the official crashes).

    Args:
        gt_dir: folder of ``<video>/<frame>.png`` ground-truth ids (VIP's ``Category_ids``).
        pred_dir: folder of ``<video>/<frame>.png`` predictions.
        progress: show a tqdm bar.

    Returns:
        ``(scores, hist, scored_files)``: :func:`~sfc.evaluation.vip.metric.scores` of the summed
        matrix (fractions), the (20, 20) int64 confusion matrix (row = GT) and the sorted
        ``<video>/<file>`` keys scored.

    Raises:
        VipFormatError: a bad file (named) or no prediction at all.
        FileNotFoundError: ``pred_dir`` or ``gt_dir`` is not a folder.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for what, folder in (("predictions", pred_dir), ("ground-truth", gt_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} folder not found")
    entries = sorted(pred_dir.iterdir(), key=lambda p: p.name)
    skipped = [p.name for p in entries if not p.is_dir()]
    if skipped:
        logger.info("%s: skipping files outside video folders: %s", pred_dir, ", ".join(skipped))
    pairs = [pair for p in entries if p.is_dir() for pair in _prediction_files(gt_dir, pred_dir, p.name)]
    if not pairs:
        raise VipFormatError(f"{pred_dir}: expected <video>/<frame>.png predictions, found none")
    cm = _accumulate(pairs, progress=progress)
    return cm.scores(), cm.hist, [key for key, _, _ in pairs]


def per_class_table(hist: np.ndarray) -> pd.DataFrame:
    """One row per class: ``class_id``, ``name``, ``IoU`` and ``accuracy`` (percent, NaN where the
    official value is NaN) and ``gt_pixels``."""
    s = scores(hist)
    hist = np.asarray(hist)
    return pd.DataFrame({
        "class_id": np.arange(N_CLASSES, dtype=np.int64),
        "name": list(CLASSES),
        "IoU": 100.0 * s["per_class_IoU"],
        "accuracy": 100.0 * s["per_class_accuracy"],
        "gt_pixels": hist.sum(axis=1).astype(np.int64),
    })


def evaluate_results(
    vip_root: PathLike, results_dir: PathLike, videos: Sequence[str], *, progress: bool = False
) -> tuple[dict[str, float], pd.DataFrame, np.ndarray]:
    """Score this project's results folder against ``VIP_Fine/Annotations/Category_ids``.

    The results are ``<results_dir>/<video>/<frame>.png`` (palette PNGs whose indices are the ids);
    every PNG of each listed video is scored (official semantics: a frame without a prediction, e.g.
    beyond ``vip.max_frames``, is not scored), all in one confusion matrix.

    Args:
        vip_root: VIP root (``VIP_Fine/Annotations/Category_ids/<video>/<frame>.png``).
        results_dir: the results folder.
        videos: the videos to score (each must have a results folder with at least one PNG).
        progress: show a tqdm bar.

    Returns:
        ``(metrics, per_class, hist)``: ``{"mIoU", "overall_accuracy", "mean_accuracy", "fwavacc"}`` in
        percent; :func:`per_class_table`; the (20, 20) int64 confusion matrix.

    Raises:
        FileNotFoundError: a video's results folder is missing.
        VipFormatError: a bad or missing file (named), or a video folder without predictions.
    """
    gt_dir, results_dir = Path(vip_root) / ANNOTATIONS_DIR, Path(results_dir)
    if not videos:
        raise VipFormatError(f"{results_dir}: expected at least one video to score, found an empty list")
    pairs: list[tuple[str, Path, Path]] = []
    for video in videos:
        if not (results_dir / video).is_dir():
            raise FileNotFoundError(f"{results_dir / video}: results folder of video {video!r} not found")
        found = _prediction_files(gt_dir, results_dir, video)
        if not found:
            raise VipFormatError(f"{results_dir / video}: expected predicted <frame>.png files, found none")
        pairs.extend(found)
    cm = _accumulate(pairs, progress=progress)
    s = cm.scores()
    metrics = {key: 100.0 * float(s[key]) for key in ("mIoU", "overall_accuracy", "mean_accuracy", "fwavacc")}
    logger.info("VIP mIoU %.2f (overall accuracy %.2f, mean accuracy %.2f) over %d frame(s) of %d video(s)",
                metrics["mIoU"], metrics["overall_accuracy"], metrics["mean_accuracy"], len(pairs), len(videos))
    return metrics, per_class_table(cm.hist), cm.hist


def overlay_samples(
    vip_root: PathLike, results_dir: PathLike, videos: Sequence[str], n_videos: int
) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """First, middle and last predicted frame of the first ``n_videos`` videos, with their frames.

    Returns:
        One row per video of ``(title, (H, W, 3) uint8 frame, (H, W) uint8 predicted part ids)``, for
        :func:`sfc.viz.figures.overlay_grid` (with the part palette). Videos without predictions are skipped.
    """
    rows = []
    for name in list(videos)[:n_videos]:
        folder = Path(results_dir) / name
        frames = sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []
        if not frames:
            continue
        picks = [frames[0], frames[len(frames) // 2], frames[-1]]
        rows.append([
            (f"{name} / {f}", read_frame(frame_path(vip_root, name, f)), read_prediction(folder / f"{f}.png"))
            for f in picks
        ])
    return rows


def iter_result_frames(
    vip_root: PathLike, results_dir: PathLike, video: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every predicted frame of a video with its image, read lazily in temporal order.

    Args:
        vip_root: VIP root (``VIP_Fine/Images``).
        results_dir: results folder (``<video>/<frame>.png``).
        video: video name.

    Yields:
        ``((H, W, 3) uint8 RGB frame, (H, W) uint8 predicted part ids)`` per results PNG (none when the
        video has no results folder), one pair in memory at a time, for
        :class:`sfc.viz.video.OverlayVideo`.
    """
    folder = Path(results_dir) / video
    frames = sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []
    for f in frames:
        yield read_frame(frame_path(vip_root, video, f)), read_prediction(folder / f"{f}.png")
