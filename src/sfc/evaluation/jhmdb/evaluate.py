"""JHMDB keypoint propagation: select videos, propagate frame 0's joints, score PCK.

The loop of the benchmark, built on its reader (:mod:`~sfc.evaluation.jhmdb.reader`), its label
encoding (:mod:`~sfc.evaluation.jhmdb.labels`), its metric (:mod:`~sfc.evaluation.jhmdb.metric`) and
the shared front door (:mod:`sfc.evaluation.common`):

1. :func:`select_videos` resolves ``jhmdb.*`` into video names and validates every selected video
   (frames, ``.mat``, frame count) before any long work;
2. :func:`predict_video` squashes the frames to :func:`input_size` (320 x 320 officially), draws
   frame 0's joints on the first frame's feature grid, propagates them through the video and
   decodes every frame: the content of the official ``<i>.dat`` file, ``(2, 15, T)`` float32 grid
   coordinates, -1 for a lost joint;
3. :func:`score_videos` scores predictions of many videos as the official ``eval_pck.py`` (distances
   pooled per joint in list order) and returns the metrics and per-video / per-joint tables.

No Kedro or MLflow here.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sfc.config import JhmdbConfig, PropagationConfig
from sfc.evaluation.common import Networks, iter_frame_features, propagate_labels
from sfc.evaluation.jhmdb.labels import STRIDE, decode_joints, encode_joints, feature_coords, grid_size
from sfc.evaluation.jhmdb.metric import THRESHOLDS, PckResult, metric_name, pck, video_distances
from sfc.evaluation.jhmdb.reader import (
    FRAMES_DIR,
    JOINTS,
    JhmdbFormatError,
    JhmdbVideo,
    frame_folder,
    iter_frames,
    list_videos,
    load_video,
    read_frame,
    read_split,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PREDICTION_COLUMNS",
    "input_size",
    "network_stride",
    "overlay_samples",
    "predict_video",
    "predict_videos",
    "predictions_from_table",
    "score_predictions",
    "score_videos",
    "select_videos",
    "split_file",
]

PREDICTION_COLUMNS = ("video", "frame", "joint", "x_feat", "y_feat", "x", "y", "input_h", "input_w")
"""Columns of the predictions table: one row per (video, frame, joint); ``x_feat``/``y_feat`` are the
official ``.dat`` values (feature-grid units, -1 = lost), ``x``/``y`` the same in 0-based image pixels
(negative = lost), ``input_h``/``input_w`` the size the frames were resized to."""

#: How many available videos an "unknown video" error shows.
SHOWN_AVAILABLE = 10


# ------------------------------------------------------------------------------------------ selection
def split_file(cfg: JhmdbConfig) -> Path | None:
    """The split file ``jhmdb.split`` names, or None (every video).

    A relative path is looked up as given (from the working directory) and then under ``jhmdb.root``
    (so ``splits/test.txt`` inside the dataset works too).

    Raises:
        JhmdbFormatError: the file exists in neither place (both are named).
    """
    if cfg.split is None:
        return None
    path = Path(cfg.split)
    if path.is_file():
        return path
    in_root = Path(cfg.root) / path
    if not path.is_absolute() and in_root.is_file():
        return in_root
    looked = str(path) if path.is_absolute() else f"{path.resolve()} and {in_root}"
    raise JhmdbFormatError(f"{path}: split file not found (parameter jhmdb.split; looked for {looked})")


def select_videos(cfg: JhmdbConfig) -> list[str]:
    """The videos ``jhmdb.*`` selects, each validated before any long work starts.

    ``jhmdb.split`` null selects every video with frames and a ``joint_positions.mat``
    (:func:`~sfc.evaluation.jhmdb.reader.list_videos`); otherwise the videos of the split file
    (:func:`~sfc.evaluation.jhmdb.reader.read_split`, both formats). Every selected video is then
    loaded with :func:`~sfc.evaluation.jhmdb.reader.load_video` (frames, first frame, ``pos_img``,
    frame count), so a bad file fails now, named, not after the propagation.

    Returns:
        Video names ``"<class>/<video>"``, in split (or sorted) order.

    Raises:
        JhmdbFormatError: no video, unknown videos (all listed, with a few available ones), or a bad
            file.
    """
    root = Path(cfg.root)
    available = list_videos(root)
    path = split_file(cfg)
    names = available if path is None else read_split(root, path)
    if not names:
        raise JhmdbFormatError(
            f"{root / FRAMES_DIR}: expected at least one video (<class>/<video>/ with PNG frames and "
            "joint_positions/<class>/<video>/joint_positions.mat), found none"
        )
    unknown = [n for n in names if not frame_folder(root, n).is_dir()]
    if unknown:
        shown = ", ".join(available[:SHOWN_AVAILABLE]) + (" ..." if len(available) > SHOWN_AVAILABLE else "")
        raise JhmdbFormatError(
            f"{root / FRAMES_DIR}: unknown video(s) in {path}: {', '.join(map(repr, unknown))} (expected a folder "
            f"{root / FRAMES_DIR}/<class>/<video>; {len(available)} available: {shown or 'none'})"
        )
    frames = sum(load_video(root, n).num_frames for n in names)
    logger.info("JHMDB: %d video(s), %d frames from %s (split %s; every .mat checked)", len(names), frames, root,
                path if path is not None else "all videos")
    return names


def input_size(cfg: JhmdbConfig, video: JhmdbVideo) -> tuple[int, int]:
    """(H', W') the frames of ``video`` are resized to: ``jhmdb.image_size`` squared, or the native size when null."""
    if cfg.image_size is None:
        return (int(video.size[0]), int(video.size[1]))
    return (int(cfg.image_size), int(cfg.image_size))


# ----------------------------------------------------------------------------------------- prediction
def network_stride(networks: Networks) -> int:
    """Output stride of the fine network (its ``stride`` attribute; 8 for the ResNets)."""
    return int(getattr(networks.fine, "stride", STRIDE))


def predict_video(
    video: JhmdbVideo,
    networks: Networks,
    propagation: PropagationConfig,
    *,
    size: tuple[int, int],
    batch_size: int | None = None,
) -> np.ndarray:
    """Propagate frame 0's joints through ``video``: the official ``.dat`` content.

    Frames are resized to ``size`` (aspect not kept), frame 0's GT joints are drawn on the grid of
    the first frame's features (``ceil(H'/stride) x ceil(W'/stride)``,
    :func:`~sfc.evaluation.jhmdb.labels.encode_joints`), that label map alone is propagated
    (:func:`sfc.evaluation.common.propagate_labels`, as ``test.py`` zeroes all later labels), and every
    frame's soft map is decoded (:func:`~sfc.evaluation.jhmdb.labels.decode_joints`); frame 0 is the
    decoding of the encoded map itself, as in ``test.py``.

    Args:
        video: a validated video (:func:`~sfc.evaluation.jhmdb.reader.load_video`).
        networks: the network(s) and device (:func:`sfc.evaluation.common.load_networks`).
        propagation: top-k, temperature, r', m.
        size: (H', W') network input size (:func:`input_size`).
        batch_size: frames per forward pass (None: 4 on CUDA, 1 on the CPU).

    Returns:
        (2, 15, T) float32 ``[x; y]`` grid coordinates, -1 where a joint's channel is empty.

    Raises:
        ValueError: the feature grid is not ``ceil(size / stride)`` (a network of unexpected stride).
        JhmdbFormatError: a frame is unreadable or of another size.
    """
    stride = network_stride(networks)
    feats = iter(iter_frame_features(networks, iter_frames(video), size=size, batch_size=batch_size))
    first = next(feats)
    grid = (int(first.shape[-2]), int(first.shape[-1]))
    if grid != grid_size(size, stride):
        raise ValueError(
            f"{video.name}: expected a feature grid of {grid_size(size, stride)} for input {tuple(size)} at stride "
            f"{stride}, found {grid}"
        )
    coords0 = feature_coords(video.pos_img[:, :, 0], video.size, size, stride)
    labels0 = torch.from_numpy(encode_joints(coords0, grid))
    soft_maps = propagate_labels(itertools.chain([first], feats), labels0, propagation)
    coords = [decode_joints(soft) for soft in soft_maps]
    if len(coords) != video.num_frames:
        raise ValueError(f"{video.name}: expected {video.num_frames} predicted frames, found {len(coords)}")
    return np.stack(coords, axis=-1).astype(np.float32, copy=False)


# -------------------------------------------------------------------------------------------- scoring
def score_videos(
    videos: Mapping[str, JhmdbVideo],
    predictions: Mapping[str, np.ndarray],
    *,
    input_sizes: Mapping[str, tuple[int, int]],
    stride: int = STRIDE,
    thresholds: Sequence[float] = THRESHOLDS,
) -> tuple[dict[str, object], pd.DataFrame, pd.DataFrame]:
    """Score predictions of many videos as the official ``eval_pck.py``.

    Distances of all videos are pooled per joint in the order of ``videos`` (the official filelist
    order; long videos weigh more), and the reported PCK is the mean of the per-joint PCKs. The
    grid coordinates of a video are scaled back with ``(W' / stride, H' / stride)`` of its input size
    (40 x 40 for the official 320 px). A joint never scored anywhere (the official
    ``ZeroDivisionError``) is NaN in the per-joint table and named in ``unscored_joints``; the means
    are then over the scored joints.

    Args:
        videos: name -> validated video (ground truth and frame size), in list order.
        predictions: name -> (2, 15, T) grid predictions (:func:`predict_video`, or an official ``.dat``);
            one per video.
        input_sizes: name -> (H', W') the video was resized to for its prediction.
        stride: output stride of the network of the predictions.
        thresholds: PCK thresholds.

    Returns:
        ``(metrics, per_video, per_joint)``: ``metrics`` = ``{"PCK_0.1": percent, ...,
        "unscored_joints": [joint names]}``; ``per_video``: one row per video (``video``, ``frames``,
        ``scored`` entries, ``PCK_<t>``: that video's own mean of per-joint PCKs); ``per_joint``: one
        row per joint (``joint``, ``scored``, ``PCK_<t>``) of the pooled scores.

    Raises:
        ValueError: no video, a video without prediction (or a prediction of no video), a video
            without input size, or predictions of the wrong shape.
    """
    if not videos:
        raise ValueError("expected at least one video to score, found none")
    missing = [n for n in videos if n not in predictions]
    extra = [n for n in predictions if n not in videos]
    if missing or extra:
        raise ValueError(
            f"expected one prediction per video; without prediction: {missing or 'none'}; predictions of unknown "
            f"videos: {extra or 'none'}"
        )
    no_size = [n for n in videos if n not in input_sizes]
    if no_size:
        raise ValueError(f"expected the input size of every video, missing for {no_size}")
    distances: list[np.ndarray] = []
    rows: list[dict[str, object]] = []
    for name, video in videos.items():
        height, width = (int(v) for v in input_sizes[name])
        dist = video_distances(predictions[name], video.pos_img, video.size, (width / stride, height / stride))
        distances.append(dist)
        table = pck([dist], thresholds)
        row: dict[str, object] = {"video": name, "frames": video.num_frames, "scored": int((~np.isnan(dist)).sum())}
        row.update({metric_name(t): float(table[i, -1]) for i, t in enumerate(thresholds)})
        rows.append(row)
    result = PckResult.from_distances(distances, thresholds)
    joint_names = list(JOINTS) if result.table.shape[1] - 1 == len(JOINTS) else [
        str(j) for j in range(result.table.shape[1] - 1)
    ]
    per_joint = pd.DataFrame({"joint": joint_names, "scored": result.scored.astype(int)})
    for i, t in enumerate(result.thresholds):
        per_joint[metric_name(t)] = result.table[i, :-1]
    unscored = [joint_names[j] for j in result.unscored_joints]
    if unscored:
        logger.warning(
            "JHMDB PCK: joint(s) %s never scored in %d video(s) (the official script raises ZeroDivisionError); "
            "means are over the %d scored joints", ", ".join(unscored), len(videos), len(joint_names) - len(unscored),
        )
    metrics: dict[str, object] = dict(result.metrics())
    metrics["unscored_joints"] = unscored
    return metrics, pd.DataFrame(rows), per_joint


# ------------------------------------------------------------------------------- tables (the pipeline)
def predict_videos(
    cfg: JhmdbConfig, names: Sequence[str], networks: Networks, propagation: PropagationConfig
) -> pd.DataFrame:
    """:func:`predict_video` over ``names``, as one table of :data:`PREDICTION_COLUMNS` (all frames, all joints)."""
    stride = network_stride(networks)
    tables = []
    for i, name in enumerate(names):
        video = load_video(cfg.root, name)
        size = input_size(cfg, video)
        t0 = time.perf_counter()
        pred = predict_video(video, networks, propagation, size=size)
        seconds = time.perf_counter() - t0
        logger.info("%s (%d/%d): %d frames in %.1f s", name, i + 1, len(names), video.num_frames, seconds)
        n_joints, n_frames = pred.shape[1], pred.shape[2]
        frame = np.repeat(np.arange(n_frames), n_joints)
        joint = np.tile(np.arange(n_joints), n_frames)
        xf, yf = pred[0].T.reshape(-1), pred[1].T.reshape(-1)
        H, W = video.size
        # Image pixels as the official scorer scales them back: value / (input / stride) * original size.
        gx = np.float32(size[1] / stride)
        gy = np.float32(size[0] / stride)
        x = np.where(xf < 0, xf, (xf / gx).astype(np.float32) * np.float32(W)).astype(np.float32)
        y = np.where(xf < 0, yf, (yf / gy).astype(np.float32) * np.float32(H)).astype(np.float32)
        tables.append(pd.DataFrame({
            "video": name, "frame": frame, "joint": joint, "x_feat": xf, "y_feat": yf, "x": x, "y": y,
            "input_h": size[0], "input_w": size[1],
        }))
    return pd.concat(tables, ignore_index=True)[list(PREDICTION_COLUMNS)]


def predictions_from_table(table: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """Inverse of :func:`predict_videos`: ``({video: (2, 15, T) float32 grid coordinates}, {video: (H', W')})``.

    Raises:
        ValueError: missing columns, or a video whose rows do not form a full (frame, joint) grid.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"predictions table lacks the column(s) {missing}; expected {list(PREDICTION_COLUMNS)}")
    preds: dict[str, np.ndarray] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, rows in table.groupby("video", sort=False):
        rows = rows.sort_values(["frame", "joint"])
        n_frames, n_joints = int(rows["frame"].max()) + 1, int(rows["joint"].max()) + 1
        if len(rows) != n_frames * n_joints:
            raise ValueError(f"predictions of {name}: {len(rows)} rows for {n_frames} frames x {n_joints} joints")
        xy = rows[["x_feat", "y_feat"]].to_numpy(np.float32).reshape(n_frames, n_joints, 2)
        preds[str(name)] = np.ascontiguousarray(xy.transpose(2, 1, 0))
        sizes[str(name)] = (int(rows["input_h"].iloc[0]), int(rows["input_w"].iloc[0]))
    return preds, sizes


def score_predictions(
    cfg: JhmdbConfig, names: Sequence[str], table: pd.DataFrame, *, stride: int = STRIDE
) -> tuple[dict[str, object], pd.DataFrame, pd.DataFrame]:
    """:func:`score_videos` of a predictions table against the ground truth under ``cfg.root``."""
    preds, sizes = predictions_from_table(table)
    videos = {name: load_video(cfg.root, name) for name in names}
    return score_videos(videos, preds, input_sizes=sizes, stride=stride)


def overlay_samples(
    cfg: JhmdbConfig, names: Sequence[str], table: pd.DataFrame, n_videos: int
) -> list[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """First, middle and last frame of the first ``n_videos`` videos with predicted and GT joints (image pixels).

    Returns:
        One row per video of ``(title, frame, predicted (2, 15), ground truth (2, 15))`` (0-based pixels;
        lost predictions negative), for :func:`sfc.viz.figures.keypoint_grid`.
    """
    rows = []
    for name in list(names)[:n_videos]:
        video = load_video(cfg.root, name)
        sub = table[table["video"] == name]
        if sub.empty:
            continue
        T = video.num_frames
        row = []
        for t in (0, T // 2, T - 1):
            at = sub[sub["frame"] == t].sort_values("joint")
            pred = at[["x", "y"]].to_numpy(np.float32).T
            gt = (video.pos_img[:, :, t] - 1.0).astype(np.float32)
            short = name.split("/")[-1]
            short = short if len(short) <= 26 else short[:24] + ".."
            row.append((f"{short} / {video.frame_paths[t].name}", read_frame(video.frame_paths[t]), pred, gt))
        rows.append(row)
    return rows
