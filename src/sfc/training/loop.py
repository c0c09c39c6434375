"""The training loop of the fine-grained correspondence (FC) network, resumable and optionally distributed.

:func:`train_fc` trains :class:`~sfc.models.fc.FineGrained` on a list of frame files (SFC A.1: two crops
of one YouTube-VOS frame, Adam lr 1e-3, batch 96, 60k iterations). It keeps its resume state in
``config.work_dir`` (``last.ckpt``, ``last.prev.ckpt``, ``metrics.jsonl``: see
:mod:`sfc.training.checkpoint`) and returns the final export (layout ``sfc_native``: the official
``{'model': {'online_encoder.*', 'online_projector.*', 'predictor.*', 'target_*'}}`` keys plus
``format``/``arch``/``step``/``config``) in :attr:`TrainResult.export` on rank 0; saving it is the
caller's job (the ``fc_checkpoint`` catalog entry, or ``python -m sfc.training``).

Determinism: with ``deterministic=True`` on CPU (``torch.use_deterministic_algorithms(True)``), a run
that is killed and rerun ends with weights bit-identical to an uninterrupted run with the same seed, on
the same machine with the same thread count and world size.

Distributed (:mod:`sfc.training.distributed`): the online network is wrapped in
``DistributedDataParallel``; BatchNorm statistics stay per process (the official code trains on one GPU
with batch 96, so with N processes each BN sees B / N samples); ``sync_bn=True`` (CUDA only)
synchronises them instead.

Precision: on CUDA, bf16 autocast (``amp``) and channels_last; the loss itself is computed in float32.
On CPU everything is float32.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sfc.atomic import previous_path, remove_stale_temporaries
from sfc.device import resolve_device
from sfc.models.fc import FineGrained
from sfc.training import checkpoint as ckpt
from sfc.training.config import FCTrainConfig, TrainResult
from sfc.training.data import StepSampler, build_frame_dataset, collate_crops
from sfc.training.distributed import (
    DistContext,
    barrier,
    check_same_step,
    init_distributed,
    reduce_step,
    replicas_identical,
)
from sfc.training.schedules import ema_momentum

__all__ = ["TrainingDivergedError", "build_fc_model", "build_optimizer", "train_fc"]

logger = logging.getLogger(__name__)

LogCallback = Callable[[dict[str, float], int], None]
"""``log(metrics, step)``: called on rank 0 every ``log_every`` steps."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def _seed_everything(seed: int) -> None:
    # Nothing in training draws from the global RNGs (init, order and crops use private seeded
    # generators); they are seeded and checkpointed anyway so that user hooks stay reproducible.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _unwrap(model: torch.nn.Module) -> FineGrained:
    """The :class:`FineGrained` inside a DDP (or any ``.module``) wrapper."""
    inner = model.module if hasattr(model, "module") else model
    assert isinstance(inner, FineGrained)
    return inner


def build_fc_model(config: FCTrainConfig) -> FineGrained:
    """The FC network of ``config`` with its seeded init (CPU, training mode).

    Args:
        config: uses ``arch``, the head widths, ``radius`` and ``seed``.

    Returns:
        A :class:`~sfc.models.fc.FineGrained`.
    """
    return FineGrained(
        config.arch,
        projection_hidden_dim=config.projection_hidden_dim,
        projection_dim=config.projection_dim,
        prediction_hidden_dim=config.prediction_hidden_dim,
        radius=config.radius,
        seed=config.seed,
    )


def build_optimizer(model: FineGrained, config: FCTrainConfig) -> torch.optim.Optimizer:
    """Adam over the online parameters (the target has no gradients), constant lr (SFC A.1).

    Args:
        model: the FC network.
        config: uses ``lr`` and ``weight_decay``.

    Returns:
        A ``torch.optim.Adam``.
    """
    return torch.optim.Adam(model.online_parameters(), lr=config.lr, weight_decay=config.weight_decay)


def train_fc(
    frame_paths: Sequence[str | os.PathLike[str]],
    config: FCTrainConfig,
    *,
    log: LogCallback | None = None,
) -> TrainResult:
    """Train the FC network on frame files, resuming from ``config.work_dir/last.ckpt`` when it exists.

    Args:
        frame_paths: frame image files (order matters: it seeds the data order together with
            ``config.seed``; pass the same list to resume).
        config: the ``fc_pretrain`` options; ``work_dir`` holds ``last.ckpt``, ``last.prev.ckpt`` and
            ``metrics.jsonl`` (``nproc_per_node`` is only read by :func:`~sfc.training.launch_fc_training`).
        log: called on rank 0 every ``log_every`` steps with ``({'loss', 'lr', 'ema_momentum',
            'images_per_second', 'epoch', 'skipped_images'}, step)``; ``loss`` is the mean over the
            steps since the previous log.

    Returns:
        A :class:`~sfc.training.config.TrainResult`; on rank 0 its ``export`` is the final checkpoint
        dict (not written to any file).

    Raises:
        ValueError: empty frame list, or a batch size not divisible by the number of processes.
        ResumeError: ``last.ckpt`` is unreadable or incompatible (the message names it and what to do).
        TrainingDivergedError: the loss became NaN/inf; ``last.ckpt`` keeps the last good state.
        RuntimeError: too many consecutive unusable frames, or CUDA requested but unavailable.
    """
    paths = [str(p) for p in frame_paths]
    if not paths:
        raise ValueError("train_fc needs at least one frame path")
    started = time.monotonic()
    want_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    ctx = init_distributed(want_cuda)
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        return _train(paths, config, log, ctx, started)
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.backends.cudnn.benchmark = previous_benchmark
        if ctx.owns_group:
            dist.destroy_process_group()


def _resume(
    model: FineGrained, config: FCTrainConfig, paths: list[str], ckpt_path: Path, ctx: DistContext
) -> tuple[int, dict[str, Any] | None, Path | None]:
    """Load ``last.ckpt`` (or ``last.prev.ckpt`` when it is missing) into ``model``, if there is one.

    Returns:
        (start step, the training state or None, the file it came from or None).
    """
    resume_from = ckpt_path if ckpt_path.exists() else None
    if resume_from is None and previous_path(ckpt_path).exists():
        resume_from = previous_path(ckpt_path)
        logger.warning("%s is missing; resuming from %s", ckpt_path, resume_from)
    if resume_from is None:
        return 0, None, None
    state = ckpt.load_train_state(resume_from)
    ckpt.check_resumable(state, config, paths, resume_from)
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise ckpt.ResumeError(
            f"cannot resume from {resume_from}: {exc}. " + ckpt.resume_hint(resume_from)
        ) from exc
    if int(state.get("world_size", ctx.world_size)) != ctx.world_size:
        logger.warning(
            "%s was written by %s processes, now %s: per-process BatchNorm statistics change",
            resume_from,
            state.get("world_size"),
            ctx.world_size,
        )
    return int(state["step"]), state, resume_from


@torch.enable_grad()  # training must not inherit a caller's no_grad (e.g. a suspended generator's)
def estimate_cpu_step_seconds(model: torch.nn.Module, config: FCTrainConfig) -> float:
    """Rough seconds per training step on this CPU, measured before training starts.

    Times one forward + backward pass of a copy of the online encoder on two blank
    ``image_size`` crops (no random numbers drawn, the model itself untouched, so a resume stays
    bit-identical) and scales it to a step: ``batch_size`` pairs of views through the online encoder
    (forward + backward) and the target encoder (forward, about a third of that).
    """
    encoder = copy.deepcopy(_unwrap(model).online_encoder).train()
    encoder(torch.zeros(2, 3, 32, 32)).float().sum().backward()  # warm-up: first-call allocations
    side = min(config.image_size, 128)  # convolution cost grows with the pixel count
    begin = time.perf_counter()
    encoder(torch.zeros(2, 3, side, side)).float().sum().backward()
    per_image = (time.perf_counter() - begin) / 2 * (config.image_size / side) ** 2
    return per_image * config.batch_size * 2 * (1 + 1 / 3)


def warn_cpu_duration(step_seconds: float, config: FCTrainConfig, start_step: int) -> None:
    """Log how long the remaining steps would take on this CPU; a warning with a way out past an hour."""
    hours = step_seconds * (config.steps - start_step) / 3600
    message = (
        f"FC training on the CPU: about {step_seconds:.1f} s per step (batch {config.batch_size}, "
        f"{config.image_size} px), so {config.steps - start_step} steps would take about {hours:,.1f} h"
    )
    if hours <= 1:
        logger.info(message)
        return
    logger.warning(
        "%s. The paper's settings are meant for GPUs. For a CPU-sized run use the demo env "
        "(`kedro run --env demo --pipelines fc_pretrain`: 50 steps, batch 8, 64 px) or smaller settings, "
        "e.g. --params \"fc_pretrain.steps=200,fc_pretrain.batch_size=16,fc_pretrain.image_size=128\" "
        "(or fc_pretrain.max_minutes=N to stop cleanly after N minutes).",
        message,
    )


def _train(
    paths: list[str],
    config: FCTrainConfig,
    log: LogCallback | None,
    ctx: DistContext,
    started: float,
) -> TrainResult:
    if config.batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} (global) is not divisible by the {ctx.world_size} processes"
        )
    device = resolve_device(config.device, local_rank=ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if not config.deterministic:
            torch.backends.cudnn.benchmark = True
    if config.sync_bn and not (ctx.enabled and device.type == "cuda"):
        raise ValueError("sync_bn=True needs CUDA and several processes (SyncBatchNorm has no CPU kernel)")
    work_dir = Path(config.work_dir)
    ckpt_path = work_dir / ckpt.CHECKPOINT_NAME
    metrics_path = work_dir / ckpt.METRICS_NAME
    if ctx.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(work_dir)  # partial files of a killed save
    barrier(ctx)

    model = build_fc_model(config)
    _seed_everything(config.seed)
    start_step, state, resume_from = _resume(model, config, paths, ckpt_path, ctx)
    check_same_step(ctx, start_step)

    if config.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[assignment]
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, config)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        logger.info("Resumed FC training from %s at step %d", resume_from, start_step)
    del state
    if ctx.is_main:
        ckpt.truncate_metrics(metrics_path, start_step)

    net: torch.nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    loader = DataLoader(
        build_frame_dataset(paths, config),
        batch_size=config.batch_size // ctx.world_size,
        sampler=StepSampler(start_step, config.steps, config.batch_size, ctx.rank, ctx.world_size),
        num_workers=config.num_workers,
        collate_fn=collate_crops,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and config.amp
        else nullcontext()
    )
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    frames_sha = ckpt.frames_fingerprint(paths)

    def model_export(step: int, *, kind: str) -> dict[str, Any]:
        return _unwrap(model).export_checkpoint(step=step, kind=kind, config=config.training_options())

    def save(step: int) -> None:
        if ctx.is_main:
            train_state = model_export(step, kind=ckpt.TRAIN_STATE_KIND)
            train_state.update(
                optimizer=optimizer.state_dict(),
                rng=ckpt.rng_state(),
                world_size=ctx.world_size,
                data={
                    "seed": config.seed,
                    "n_frames": len(paths),
                    "frames_sha256": frames_sha,
                    "position": step * config.batch_size,
                    "epoch": (step * config.batch_size) // len(paths),
                },
            )
            ckpt.save_train_state(train_state, ckpt_path)
        barrier(ctx)

    if ctx.is_main and device.type == "cpu" and config.steps > start_step:
        warn_cpu_duration(estimate_cpu_step_seconds(model, config), config, start_step)
    logger.info(
        "FC training: %d frames, steps %d -> %d, global batch %d over %d process(es), device %s%s",
        len(paths),
        start_step,
        config.steps,
        config.batch_size,
        ctx.world_size,
        device,
        " (bf16 autocast, channels_last)" if device.type == "cuda" and config.amp else "",
    )
    step = start_step
    n_skipped = 0
    last_loss: float | None = None
    stopped_early = False
    window_losses: list[float] = []
    window_start, window_step = time.monotonic(), step
    loop_start = time.monotonic()
    warned_skips = 0
    model.train()
    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc="FC training",
        unit="step",
        disable=not (ctx.is_main and config.progress),
        dynamic_ncols=True,
    )
    try:
        for batch in loader:
            view1 = batch["view1"].to(device, non_blocking=True, memory_format=memory_format)
            view2 = batch["view2"].to(device, non_blocking=True, memory_format=memory_format)
            box1 = batch["box1"].to(device, non_blocking=True)
            box2 = batch["box2"].to(device, non_blocking=True)
            momentum = ema_momentum(step, config.steps, config.momentum_base)
            # Official order: EMA update with the current online weights, then the target pass.
            _unwrap(model).update_target(momentum)
            with autocast:
                loss = net(view1, view2, box1, box2)
            over_time = (
                config.max_minutes is not None and (time.monotonic() - started) > 60 * config.max_minutes
            )
            loss_value, stop, step_skips = reduce_step(ctx, loss.detach(), over_time, len(batch["skipped"]))
            if not math.isfinite(loss_value):
                good = f"{ckpt_path} (step {ckpt.saved_step(ckpt_path)})" if ckpt_path.exists() else "none yet"
                raise TrainingDivergedError(
                    f"non-finite FC loss ({loss_value}) at step {step + 1} of {config.steps}; training stopped "
                    f"without saving. Last good checkpoint: {good}."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            last_loss = loss_value
            window_losses.append(loss_value)
            n_skipped += step_skips
            if ctx.is_main and batch["skipped"] and warned_skips < 20:
                for msg in batch["skipped"][: 20 - warned_skips]:
                    logger.warning("skipped frame %s", msg)
                warned_skips += len(batch["skipped"])
            bar.update(1)
            if step % config.checkpoint_every == 0 or step == config.steps or stop:
                save(step)
            if step % config.log_every == 0 or step == config.steps or stop:
                now = time.monotonic()
                metrics = {
                    "loss": float(np.mean(window_losses)),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "ema_momentum": float(momentum),
                    "images_per_second": (step - window_step) * config.batch_size / max(now - window_start, 1e-9),
                    "epoch": step * config.batch_size / len(paths),
                    "skipped_images": float(n_skipped),
                }
                window_losses, window_start, window_step = [], now, step
                if ctx.is_main:
                    ckpt.emit_metrics(metrics, step, metrics_path, log, bar)
            if stop:
                stopped_early = True
                logger.warning(
                    "max_minutes=%s reached: stopping at step %d of %d", config.max_minutes, step, config.steps
                )
                break
    finally:
        bar.close()

    loop_seconds = time.monotonic() - loop_start
    export = model_export(step, kind=ckpt.EXPORT_KIND) if ctx.is_main else None
    identical = replicas_identical(_unwrap(model), ctx)
    steps_run = step - start_step
    if n_skipped and ctx.is_main:
        logger.warning(
            "%d frames were skipped (unreadable or smaller than %d px)", n_skipped, config.min_size
        )
    return TrainResult(
        final_step=step,
        start_step=start_step,
        wall_seconds=time.monotonic() - started,
        images_per_second=steps_run * config.batch_size / loop_seconds if steps_run and loop_seconds > 0 else 0.0,
        export=export,
        checkpoint_path=ckpt_path,
        stopped_early=stopped_early,
        n_skipped_images=n_skipped,
        last_loss=last_loss,
        world_size=ctx.world_size,
        device=str(device),
        replicas_identical=identical,
    )
