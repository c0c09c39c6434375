"""Matrix products for the propagation engine, on the fastest BLAS available for the device.

Why this exists: on CPUs, PyTorch's wheels use MKL, which on AMD EPYC (its AVX2 path for non-Intel
CPUs) ran the engine's short-and-wide products at 30-45 GFLOP/s on 2 cores where NumPy's bundled
OpenBLAS reached 85-135 (2.45 GHz EPYC, 2026-11); on a 2.0 GHz EPYC (2026-12) the gap is smaller
(a 64-query tile against its key windows: ~27 GFLOP/s per core with MKL, ~32 with OpenBLAS,
``benchmarks/propagation.py --blas``). On CPU we therefore multiply through NumPy views of the same
memory (no copies); the backend is picked once per process by timing both on the engine's dominant
shape, and can be forced with ``SFC_CPU_BLAS=torch|numpy``. CUDA tensors always use ``torch.matmul``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cpu_backend() -> str:
    """Return ``"numpy"`` or ``"torch"``: the CPU GEMM used for the engine's shapes.

    NumPy/OpenBLAS is the default; PyTorch is chosen only if it is clearly faster (by 25%) in an
    interleaved best-of-7 timing on the engine's dominant shape (a 64-query tile against its key
    windows, keys as rows), so a busy machine cannot flip the choice by accident. ``SFC_CPU_BLAS=torch|numpy`` forces one.
    """
    forced = os.environ.get("SFC_CPU_BLAS", "").strip().lower()
    if forced in {"numpy", "torch"}:
        return forced
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(64, 256, generator=gen)  # a query tile
    keys = torch.randn(8, 900, 256, generator=gen)  # its key windows in 8 context frames
    qn, kn = q.numpy(), keys.numpy()
    fns = {"torch": lambda: torch.matmul(keys, q.T), "numpy": lambda: np.matmul(kn, qn.T)}
    best = {name: float("inf") for name in fns}
    # Warm-up. OpenBLAS 0.3.31 ran this keys-as-rows product ~3x slower in a fresh process until a
    # product of the other orientation had run once (seen on AMD EPYC; the engine always starts a
    # frame with one, its frame-0 GEMM), so one runs here too before any timing.
    np.matmul(qn, kn[0].T)
    for fn in fns.values():
        fn()
        fn()
    for _ in range(7):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    choice = "torch" if best["torch"] * 1.25 < best["numpy"] else "numpy"
    logger.debug("CPU GEMM backend: %s (best times %s)", choice, best)
    return choice


def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for 2-D float32 tensors; views (transposes, slices) are fine, nothing is copied.

    ``out``: optional contiguous (a.rows, b.cols) result buffer (reusing one avoids page faults on
    every call's fresh output).
    """
    if a.device.type == "cpu" and cpu_backend() == "numpy":
        if out is None:
            return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return torch.matmul(a, b, out=out) if out is not None else a @ b


def matmul_batched(q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``q @ keys[b].T`` for every b: q (n, C), keys (B, R, C) -> (B, n, R).

    ``keys`` may be a strided view (fixed batch stride, contiguous rows): NumPy hands each product
    to BLAS without copying, as does CUDA's batched GEMM.
    """
    if q.device.type == "cpu" and cpu_backend() == "numpy":
        return torch.from_numpy(np.matmul(q.numpy(), keys.numpy().transpose(0, 2, 1)))
    return torch.matmul(q, keys.transpose(1, 2))


def matmul_batched_rows(keys: torch.Tensor, q: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``keys[b] @ q.T`` for every b: keys (B, R, C), q (n, C) -> (B, R, n), keys as GEMM rows.

    For the engine's 64-query tiles this orientation ran marginally faster than ``q @ keys[b].T``
    (31 vs 30 GFLOP/s per core with OpenBLAS on AMD EPYC, ``benchmarks/propagation.py --blas``).
    ``keys`` may be a strided view with a fixed batch stride and contiguous rows; ``out`` an optional
    contiguous (B, R, n) buffer.
    """
    if q.device.type == "cpu" and cpu_backend() == "numpy":
        if out is None:
            return torch.from_numpy(np.matmul(keys.numpy(), q.numpy().T))
        np.matmul(keys.numpy(), q.numpy().T, out=out.numpy())
        return out
    if out is None:
        return torch.matmul(keys, q.T)
    return torch.matmul(keys, q.T, out=out)


_POOLS: dict[int, ThreadPoolExecutor] = {}


@contextmanager
def tile_parallelism(device: torch.device) -> Iterator[ThreadPoolExecutor | None]:
    """Run independent query tiles on several threads, each with a single-threaded BLAS.

    Why: for the engine's small GEMMs, two single-threaded products on two cores deliver ~65 GFLOP/s
    each, while one product split by OpenBLAS over both cores reaches only ~95 in total. Inside the
    context, BLAS and torch intra-op threads are limited to 1 and a pool of ``torch.get_num_threads()``
    workers is yielded; both limits are restored on exit. Yields None on CUDA or with one thread.
    """
    n_threads = torch.get_num_threads()
    if device.type != "cpu" or n_threads < 2 or os.environ.get("SFC_TILE_THREADS") == "1":
        yield None
        return
    pool = _POOLS.get(n_threads)
    if pool is None:
        pool = _POOLS[n_threads] = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="sfc-tiles")
    with threadpool_limits(limits=1, user_api="blas"):
        torch.set_num_threads(1)
        try:
            yield pool
        finally:
            torch.set_num_threads(n_threads)


def run_all(pool: ThreadPoolExecutor | None, fn: Callable[..., None], items: list[tuple[Any, ...]]) -> None:
    """``fn(*item)`` for every item: on the pool's threads when there is one (see
    :func:`tile_parallelism`), else in order in this thread. A worker's exception is re-raised here."""
    if pool is None:
        for item in items:
            fn(*item)
    else:
        for _ in pool.map(lambda item: fn(*item), items):
            pass  # consume the results: re-raises a worker's exception
