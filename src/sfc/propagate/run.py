"""``propagate_video``: a first-frame mask through a whole video, streaming and resumable.

Per frame: decode (:mod:`~sfc.propagate.sources`) -> features of the FC network, late-fused with a
semantic network when one is given (:func:`sfc.evaluation.common.iter_frame_features`, SFC eq. 7) ->
one step of the CRW/SFC propagation engine (:class:`sfc.propagation.engine.Propagator`) ->
bilinear upsampling and argmax at the video's resolution -> ``masks/<t>.png`` (DAVIS palette,
atomic). The same engine, label resampling and settings as ``evaluate_davis``: frames 1.. of a run
on a DAVIS sequence are the masks ``evaluate_davis`` writes for it. Frame 0's mask is the given one.

Memory is bounded by the context window: frames are decoded one at a time and handed to the networks
``batch_size`` at a time, the engine keeps the features and soft labels of the first frame and of
the last m frames, and nothing else of the video is held. After the propagation a second pass reads
the masks back (areas per object) and writes the overlay video.

Resume (:mod:`~sfc.propagate.state`): finished frames are those whose PNG exists; a rerun with the
same inputs and settings skips them, rebuilds the engine's context exactly from the recomputed
features and the saved soft labels of the last m frames, and goes on. ``summary.json`` is written
last: its presence marks a complete output folder.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sfc.atomic import write_json
from sfc.propagate.errors import PropagateInputError
from sfc.propagate.masks import FirstMask, read_first_mask
from sfc.propagate.outputs import mp4_available, write_overlay
from sfc.propagate.settings import PropagateSettings
from sfc.propagate.sources import FrameSource, open_frames
from sfc.propagate.state import MASKS_DIR, ResumeState, mask_path, settings_key

logger = logging.getLogger(__name__)

__all__ = ["OVERLAY_KINDS", "SUMMARY_FILE", "PropagateResult", "propagate_video"]

PathLike = str | os.PathLike[str]

SUMMARY_FILE = "summary.json"
OVERLAY_KINDS = ("gif", "mp4")
RECORD_VERSION = 1


@dataclass(frozen=True)
class PropagateResult:
    """What :func:`propagate_video` wrote.

    Attributes:
        out_dir: the output folder.
        frames: frames with a mask (``masks/00000.png`` .. ``<frames-1>.png``).
        computed: frames propagated by this call.
        resumed: finished frames found from an earlier run (not recomputed).
        overlay: the overlay video, or None.
        summary: the content of ``summary.json``.
    """

    out_dir: Path
    frames: int
    computed: int
    resumed: int
    overlay: Path | None
    summary: dict[str, Any]

    @property
    def summary_path(self) -> Path:
        return self.out_dir / SUMMARY_FILE


def _resolve_device(name: str) -> torch.device:
    from sfc.device import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as exc:
        raise PropagateInputError(f"--device {name}: {exc}") from exc


def _network_record(arch: str | None, checkpoint: str | None, seed: int) -> dict[str, Any] | None:
    from sfc.models.checkpoints import file_sha256

    if arch is None:
        return None
    if checkpoint is None:
        return {"arch": arch, "checkpoint": None, "sha256": None, "random_init_seed": seed}
    return {"arch": arch, "checkpoint": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)}


def _record(source: FrameSource, first: FirstMask, settings: PropagateSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the record the settings key hashes, the networks' description for the summary)."""
    networks = {
        "backbone": _network_record(settings.backbone.arch, settings.backbone.checkpoint, settings.backbone.seed),
        "semantic": _network_record(settings.semantic.arch, settings.semantic.checkpoint, settings.semantic.seed),
    }
    # Content, not paths: a moved checkout or a copied video still resumes.
    nets = {k: None if v is None else {kk: vv for kk, vv in v.items() if kk != "checkpoint"} for k, v in networks.items()}
    record = {
        "version": RECORD_VERSION,
        "inputs": {"video_sha256": source.sha256(), "mask_sha256": first.sha256()},
        "networks": nets,
        "propagation": settings.propagation.to_dict(),
        "fusion": settings.fusion.to_dict() if settings.semantic.enabled else None,
        "scale": settings.scale,
    }
    return record, networks


def _context_labels(
    state: ResumeState, t: int, first: FirstMask, shape: tuple[int, int, int]
) -> torch.Tensor:
    """Frame ``t``'s soft labels: saved (exact), else re-derived from its PNG as one-hot (approximate)."""
    soft = state.load_soft(t, shape)
    if soft is not None:
        return torch.from_numpy(soft)
    from sfc.evaluation.davis.reader import onehot, read_mask
    from sfc.propagation.labels import downsample_labels

    logger.warning("Frame %d: no saved soft labels; re-derived from %s as one-hot (this resume is approximate)",
                   t, mask_path(state.out_dir, t))
    state.approximate.append(t)
    hard = torch.from_numpy(onehot(read_mask(mask_path(state.out_dir, t)), first.object_ids))
    return downsample_labels(hard, shape[:2])


def _propagate(
    source: FrameSource,
    first: FirstMask,
    settings: PropagateSettings,
    state: ResumeState,
    n_done: int,
    *,
    device: torch.device,
    max_frames: int | None,
    batch_size: int | None,
    progress: bool,
) -> dict[str, Any]:
    """Propagate frames ``n_done ..`` (to the end or ``max_frames``); return counts and timings."""
    from sfc.evaluation.common import iter_frame_features, load_networks
    from sfc.evaluation.davis.reader import onehot, write_mask
    from sfc.propagation.engine import Propagator
    from sfc.propagation.labels import downsample_labels, upsample_argmax

    networks = load_networks(settings.backbone, settings.semantic, settings.fusion, str(device))
    if settings.backbone.checkpoint is None:
        logger.warning(
            "No FC checkpoint (--fc-checkpoint / backbone.checkpoint): the %s network is randomly initialised "
            "(seed %d), so the masks will be poor; pass a trained FC network for real results",
            settings.backbone.arch, settings.backbone.seed,
        )
    prop_cfg = settings.propagation
    m, n = prop_cfg.context, n_done
    lo = max(1, n - m)  # first context frame to rebuild on a resume
    H, W = source.size
    K = 1 + len(first.objects)
    ids_lut = np.array([0, *first.object_ids], dtype=np.uint8)

    handed: deque[int] = deque()  # indices of the frames handed to the networks, not yet out as features

    def frames() -> Iterator[np.ndarray]:
        for i, frame in source.iter_frames(wanted=lambda i: i == 0 or i >= lo, limit=max_frames):
            handed.append(i)
            yield frame

    feats = iter_frame_features(networks, frames(), scale=settings.scale, batch_size=batch_size)
    t_start = time.perf_counter()
    f0 = next(feats)
    handed.popleft()
    h, w = (int(s) for s in f0.shape[-2:])
    first_onehot = torch.from_numpy(onehot(first.ids, first.object_ids))
    # As sfc.evaluation.common.propagate_labels: labels at image resolution go to the grid bilinearly.
    labels0 = first_onehot if (H, W) == (h, w) else downsample_labels(first_onehot, (h, w))
    prop = Propagator(
        f0, labels0.to(f0.device), topk=prop_cfg.topk, temperature=prop_cfg.temperature, radius=prop_cfg.radius,
        context=m,
    )
    del first_onehot, labels0
    if n == 0:
        write_mask(mask_path(state.out_dir, 0), first.ids)  # frame 0: the given mask
        n = 1
    else:
        context = []
        for t in range(lo, n):
            try:
                f = next(feats)
            except StopIteration:
                raise PropagateInputError(
                    f"{source.path}: found {t} frame(s), but {state.masks_dir} holds masks of {n}; "
                    "the video is shorter than the run being resumed"
                ) from None
            handed.popleft()
            context.append((t, f, _context_labels(state, t, first, (h, w, K))))
        prop.restore(context, n)
        del context
        logger.info("Resumed at frame %d: frames 0..%d were finished (not recomputed); context of frames %d..%d "
                    "rebuilt%s", n, n - 1, lo, n - 1, " approximately" if state.approximate else " exactly")
    state.keep_only_soft(range(max(1, n - m), n) if m > 0 else range(0))
    t_rebuild = time.perf_counter() - t_start

    total = max_frames if max_frames is not None else source.num_frames
    bar = tqdm(total=total, initial=n, unit="frame", desc=f"propagate {source.path.name}", disable=not progress,
               dynamic_ncols=True)
    computed, t = 0, n - 1
    t0 = time.perf_counter()
    try:
        for f in feats:
            t = handed.popleft()
            soft = prop.step(f)  # (h, w, K) on the engine's device
            if m > 0:  # the soft labels are context for the next m frames: saved for a resume, first
                state.save_soft(t, soft.cpu().numpy())
            pred = upsample_argmax(soft, (H, W)).cpu().numpy()
            write_mask(mask_path(state.out_dir, t), ids_lut[pred])
            if m > 0:
                state.forget_soft(t - m)
            computed += 1
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    ended = max_frames is None or t + 1 < max_frames
    if ended:
        state.mark_end(t + 1)
    if computed:
        logger.info("Propagated %d frame(s) in %.1f s (+ %.1f s for the first features%s): %.2f frames/s, "
                    "features %dx%d, %d object(s)", computed, seconds, t_rebuild, " and the context" if n_done else "",
                    computed / seconds, h, w, K - 1)
    return {"computed": computed, "seconds": seconds + t_rebuild, "startup_seconds": t_rebuild, "feature_size": [h, w],
            "device": str(networks.device)}


def propagate_video(
    video: PathLike,
    mask: PathLike,
    out_dir: PathLike,
    settings: PropagateSettings,
    *,
    max_frames: int | None = None,
    overlay: str | None = "gif",
    overwrite: bool = False,
    progress: bool = True,
    batch_size: int | None = None,
) -> PropagateResult:
    """Propagate a first-frame mask through a video into ``out_dir`` (resuming an interrupted run).

    Writes ``out_dir/masks/00000.png ...`` (DAVIS palette PNGs of object ids at the video's
    resolution), ``out_dir/overlay.gif`` or ``overlay.mp4`` (masks over the frames), and
    ``out_dir/summary.json`` (last). See docs/propagate.md.

    Args:
        video: a video file or a folder of frames (:func:`~sfc.propagate.sources.open_frames`).
        mask: the first frame's mask (:func:`~sfc.propagate.masks.read_first_mask`), of the frames' size.
        out_dir: the output folder; finished frames of an earlier run with the same inputs and
            settings are kept and not recomputed.
        settings: networks, propagation settings, scale, device (:func:`~sfc.propagate.settings.load_settings`).
        max_frames: propagate only the first N frames; None = all.
        overlay: ``gif``, ``mp4`` (H.264, needs PyAV's libx264) or None (no overlay video).
        overwrite: start over: delete the folder's earlier masks and resume state first.
        progress: show a tqdm bar (frames/s).
        batch_size: frames per forward pass of the networks (as ``evaluate_davis``).

    Returns:
        A :class:`PropagateResult`.

    Raises:
        FileNotFoundError: the video, mask or a checkpoint does not exist.
        PropagateInputError: an unreadable video or folder, a mask of another size than the frames,
            a mask without an object, an unknown mask layout, an output folder of another
            propagation, ``--mp4`` without libx264, or a device that is not there.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if max_frames is not None and max_frames < 1:
        raise PropagateInputError(f"--max-frames must be >= 1, got {max_frames}")
    if overlay is not None and overlay not in OVERLAY_KINDS:
        raise PropagateInputError(f"overlay must be one of {', '.join(OVERLAY_KINDS)} or None, got {overlay!r}")
    source = open_frames(video)
    first = read_first_mask(mask, source.size)
    if overlay == "mp4" and not mp4_available():
        raise PropagateInputError("--mp4: this PyAV build has no libx264 encoder; use --gif (the default)")
    device = _resolve_device(settings.device)
    record, networks_info = _record(source, first, settings)
    state = ResumeState(out_dir, settings_key(record), record)
    n_done = state.open(overwrite=overwrite)
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)  # present only when the folder is complete

    end = source.num_frames if source.kind == "folder" else state.known_end()
    limit = min(x for x in (max_frames, end) if x is not None) if (max_frames, end) != (None, None) else None
    run: dict[str, Any] = {"computed": 0, "seconds": 0.0, "startup_seconds": 0.0, "feature_size": None,
                           "device": str(device)}
    if n_done:
        logger.info("%s: %d finished frame(s) found (masks 00000..%05d), not recomputed", state.masks_dir, n_done, n_done - 1)
    if limit is None or n_done < limit:
        run = _propagate(source, first, settings, state, n_done, device=device, max_frames=max_frames,
                         batch_size=batch_size, progress=progress)
    n_frames = state.finished()
    for cap in (max_frames, state.known_end()):
        if cap is not None:
            n_frames = min(n_frames, cap)
    resumed = min(n_done, n_frames)

    areas, overlay_path = _final_pass(source, first, out_dir, n_frames, overlay)
    computed, seconds = run["computed"], run["seconds"]
    summary = {
        "frames": n_frames,
        "frames_computed": computed,
        "frames_resumed": resumed,
        "frame_size": {"height": source.size[0], "width": source.size[1]},
        "feature_size": None if run["feature_size"] is None else dict(zip(("height", "width"), run["feature_size"])),
        "objects": [o.to_dict() for o in first.objects],
        "area_pixels": {str(oid): a for oid, a in areas.items()},
        "seconds": round(time.perf_counter() - t_start, 3),
        "seconds_per_frame": round(seconds / computed, 4) if computed else None,
        "frames_per_second": round(computed / seconds, 3) if computed and seconds > 0 else None,
        "startup_seconds": round(run["startup_seconds"], 3),
        "settings": settings.to_dict(),
        "networks": networks_info,
        "inputs": {
            "video": str(source.path.resolve()), "video_kind": source.kind, "video_sha256": record["inputs"]["video_sha256"],
            "fps": source.fps, "mask": str(first.path.resolve()), "mask_format": first.format,
            "mask_sha256": record["inputs"]["mask_sha256"],
        },
        "outputs": {"masks": f"{MASKS_DIR}/", "overlay": None if overlay_path is None else overlay_path.name},
        "device": run["device"],
        "resume": {"settings_key": state.key, "exact": not state.approximate, "approximate_context_frames": state.approximate},
    }
    write_json(out_dir / SUMMARY_FILE, summary)
    logger.info("Wrote %s: %d frame(s) (%d computed, %d resumed)", out_dir / SUMMARY_FILE, n_frames, computed, resumed)
    return PropagateResult(out_dir, n_frames, computed, resumed, overlay_path, summary)


def _final_pass(
    source: FrameSource, first: FirstMask, out_dir: Path, n_frames: int, overlay: str | None
) -> tuple[dict[int, list[int]], Path | None]:
    """Read the masks back once: pixel area of every object per frame, and the overlay video (the other
    format's overlay file of an earlier run is removed)."""
    from sfc.evaluation.davis.reader import read_mask

    for kind in OVERLAY_KINDS:  # an overlay of an earlier run in another format would not match summary.json
        if kind != overlay:
            (out_dir / f"overlay.{kind}").unlink(missing_ok=True)
    areas: dict[int, list[int]] = {oid: [] for oid in first.object_ids}

    def masks() -> Iterator[np.ndarray]:
        for t in range(n_frames):
            mask = read_mask(mask_path(out_dir, t))
            counts = np.bincount(mask.ravel(), minlength=256)
            for oid in areas:
                areas[oid].append(int(counts[oid]))
            yield mask

    if overlay is None:
        for _ in masks():
            pass
        return areas, None

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        frames = (frame for _, frame in source.iter_frames(limit=n_frames))
        yield from zip(frames, masks(), strict=True)

    path = out_dir / f"overlay.{overlay}"
    write_overlay(path, pairs, kind=overlay, fps=source.fps)
    return areas, path
