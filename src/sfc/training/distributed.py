"""Distributed FC training: process-group setup, the collectives of the loop, and the local launcher.

:func:`~sfc.training.train_fc` joins a process group when ``torch.distributed`` is initialised or the
environment carries torchrun's ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``/``MASTER_ADDR`` (``gloo`` on CPU,
``nccl`` on CUDA). Each rank takes a contiguous ``B / world_size`` slice of every step's global batch;
only rank 0 writes files and logs metrics, every rank reads ``last.ckpt`` on resume, so for several
machines ``work_dir`` must be on a shared file system.

:func:`launch_fc_training` starts ``config.nproc_per_node`` local processes from Python
(``torch.distributed.launcher``) and returns rank 0's :class:`~sfc.training.config.TrainResult`,
export included; ``python -m sfc.training`` is the script form for ``torchrun`` (several machines).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from sfc.training.checkpoint import ResumeError
from sfc.training.config import FCTrainConfig, TrainResult

__all__ = ["DistContext", "launch_fc_training"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the training run.

    Attributes:
        rank: global rank (0 writes files and logs).
        world_size: number of processes (1: not distributed).
        local_rank: rank on this machine (its GPU on CUDA).
        owns_group: the process group was created by :func:`init_distributed` (and is destroyed by
            :func:`~sfc.training.train_fc` at the end).
    """

    rank: int
    world_size: int
    local_rank: int
    owns_group: bool

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0."""
        return self.rank == 0


SINGLE_PROCESS = DistContext(rank=0, world_size=1, local_rank=0, owns_group=False)
"""The context of a plain, non-distributed run."""


def init_distributed(want_cuda: bool) -> DistContext:
    """Join the process group if torchrun-style environment variables ask for one (or use an existing one).

    Args:
        want_cuda: the run uses CUDA (``nccl`` backend, one GPU per local rank), else ``gloo``.

    Returns:
        The :class:`DistContext` of this process.

    Raises:
        RuntimeError: ``WORLD_SIZE > 1`` but this torch build has no ``torch.distributed``.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} but torch.distributed is not available in this build")
    backend = "nccl" if want_cuda else "gloo"
    if want_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.enabled:
        dist.barrier()


def check_same_step(ctx: DistContext, step: int) -> None:
    """Check that every rank resumes from the same step.

    Raises:
        ResumeError: the ranks read different ``last.ckpt`` files (``work_dir`` not shared).
    """
    if not ctx.enabled:
        return
    t = torch.tensor([step, -step], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != step or int(-t[1]) != step:
        raise ResumeError(
            f"ranks disagree on the resume step (this rank {step}, max {int(t[0])}, min {int(-t[1])}): "
            "work_dir must be on a file system shared by all processes"
        )


def reduce_step(ctx: DistContext, loss: torch.Tensor, over_time: bool, skips: int) -> tuple[float, bool, int]:
    """One all-reduce per step.

    Args:
        ctx: the run's context.
        loss: this rank's loss, a scalar tensor on the training device.
        over_time: this rank exceeded ``max_minutes``.
        skips: frames this rank skipped in the step.

    Returns:
        (mean loss over ranks, any rank over its time budget, skipped frames summed over ranks).
    """
    if not ctx.enabled:
        return float(loss), over_time, skips
    t = torch.stack(
        [
            loss.float(),
            torch.tensor(float(over_time), device=loss.device),
            torch.tensor(float(skips), device=loss.device),
        ]
    )
    dist.all_reduce(t)
    return float(t[0]) / ctx.world_size, bool(t[1] > 0), int(t[2])


def _parameters_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.named_parameters():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def replicas_identical(model: torch.nn.Module, ctx: DistContext) -> bool | None:
    """Compare every rank's final parameters with rank 0's (bitwise, through SHA-256 digests).

    Buffers are left out: DDP broadcasts rank 0's BatchNorm running statistics before every forward,
    but the last forward updates each rank's copy with its own shard (only rank 0's are saved).

    Args:
        model: the unwrapped model (not the DDP wrapper).
        ctx: the run's context.

    Returns:
        None in a single process, else whether all digests agree (logged as an error if not).
    """
    if not ctx.enabled:
        return None
    digests: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(digests, _parameters_digest(model))
    same = all(d == digests[0] for d in digests)
    if not same and ctx.is_main:
        logger.error("FC model replicas differ across ranks after training: %s", digests)
    return same


# --------------------------------------------------------------------------------------------- launcher


def _launched_entry(
    paths: list[str], config: dict[str, Any], log_level: int
) -> tuple[TrainResult, bytes | None]:
    """Body of each process started by :func:`launch_fc_training` (module level: must be picklable).

    Returns:
        The result without its export, and the export serialised by ``torch.save`` (rank 0; else
        None). Bytes, not tensors, travel back: torch's multiprocessing pickler would move tensors
        through shared memory (``/dev/shm``), which containers often keep small.
    """
    from sfc.training.loop import train_fc  # the loop imports this module

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level,
            format=f"[rank {os.environ.get('RANK', '?')}] %(levelname)s %(name)s: %(message)s",
        )
    result = train_fc(paths, FCTrainConfig.from_dict(config))
    if result.export is None:
        return result, None
    buffer = io.BytesIO()
    torch.save(result.export, buffer)
    return dataclasses.replace(result, export=None), buffer.getvalue()


def launch_fc_training(
    frame_paths: Sequence[str | os.PathLike[str]],
    config: FCTrainConfig,
    *,
    nnodes: int = 1,
    rdzv_endpoint: str = "127.0.0.1:0",
    run_id: str | None = None,
    max_restarts: int = 0,
    log_level: int = logging.INFO,
) -> TrainResult | None:
    """Run :func:`~sfc.training.train_fc` in ``config.nproc_per_node`` local processes.

    The same as ``torchrun --nproc-per-node N -m sfc.training ...`` but from Python
    (``torch.distributed.launcher``): each process joins a c10d rendezvous (``gloo`` on CPU, ``nccl`` on
    CUDA, one GPU per local rank) and runs ``train_fc`` with the same arguments. Metrics are not passed
    back through a callback (the processes are separate); rank 0 writes them to
    ``work_dir/metrics.jsonl``.

    Args:
        frame_paths: as for :func:`~sfc.training.train_fc`.
        config: as for :func:`~sfc.training.train_fc`; ``batch_size`` is the global batch, split over
            ``nproc_per_node`` processes per machine; ``work_dir`` is shared by all machines.
        nnodes: machines; each runs this function with the same ``rdzv_endpoint`` and ``run_id``.
        rdzv_endpoint: ``host:port`` of the rendezvous; port 0 picks a free port (single machine only).
        run_id: rendezvous id shared by all machines (default: a fresh UUID; required when nnodes > 1).
        max_restarts: elastic restarts of the whole group on a failure (each restart resumes from
            ``last.ckpt``).
        log_level: logging level set up in the spawned processes.

    Returns:
        Rank 0's :class:`~sfc.training.config.TrainResult`, its ``export`` loaded back on the CPU (None
        on machines that do not host rank 0).

    Raises:
        ValueError: ``nnodes < 1``, or ``nnodes > 1`` without a ``run_id``.
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a process failed; the message
            carries its exception (e.g. :class:`~sfc.training.TrainingDivergedError`).
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nnodes < 1:
        raise ValueError(f"need nnodes >= 1, got {nnodes}")
    if nnodes > 1 and run_id is None:
        raise ValueError("run_id must be given (and equal on every machine) when nnodes > 1")
    launch = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=config.nproc_per_node,
        run_id=run_id or f"sfc-fc-{uuid.uuid4()}",
        rdzv_backend="c10d",
        rdzv_endpoint=rdzv_endpoint,
        max_restarts=max_restarts,
        monitor_interval=0.5,
        start_method="spawn",
    )
    results = elastic_launch(launch, _launched_entry)(
        [str(p) for p in frame_paths], config.to_dict(), log_level
    )
    if 0 not in results:
        return None
    result, export = results[0]
    if export is None:
        return result
    return dataclasses.replace(result, export=torch.load(io.BytesIO(export), map_location="cpu", weights_only=True))
