"""Matrix products for the propagation engine, on the fastest BLAS available for the device.

Why this exists: on CPUs, PyTorch's wheels use MKL, which runs the short-and-wide products of the
windowed affinity (64 x 256 by 256 x 19k) at 30-45 GFLOP/s on AMD EPYC (its AVX2 path for non-Intel
CPUs), while NumPy's bundled OpenBLAS reaches 85-135 GFLOP/s on the same shapes (measured with
``benchmarks/propagation.py --blas``). On CPU we therefore multiply through NumPy views of the same
memory (no copies); the backend is picked once per process by timing both on a representative
shape, and can be forced with ``SFC_CPU_BLAS=torch|numpy``. CUDA tensors always use ``torch.matmul``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cpu_backend() -> str:
    """Return ``"numpy"`` or ``"torch"``: the CPU GEMM used for the engine's shapes.

    NumPy/OpenBLAS is the default; PyTorch is chosen only if it is clearly faster (by 25%) in an
    interleaved best-of-7 timing on a representative shape, so a busy machine cannot flip the choice
    by accident. ``SFC_CPU_BLAS=torch|numpy`` forces one.
    """
    forced = os.environ.get("SFC_CPU_BLAS", "").strip().lower()
    if forced in {"numpy", "torch"}:
        return forced
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(64, 256, generator=gen)
    b = torch.randn(4096, 256, generator=gen)
    fns = {"torch": lambda: a @ b.T, "numpy": lambda: np.matmul(a.numpy(), b.numpy().T)}
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()  # warm-up (thread pools, packing buffers)
    for _ in range(7):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    choice = "torch" if best["torch"] * 1.25 < best["numpy"] else "numpy"
    logger.debug("CPU GEMM backend: %s (best times %s)", choice, best)
    return choice


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D float32 tensors; views (transposes, slices) are fine, nothing is copied."""
    if a.device.type == "cpu" and cpu_backend() == "numpy":
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b


def matmul_batched(q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``q @ keys[b].T`` for every b: q (n, C), keys (B, R, C) -> (B, n, R).

    ``keys`` may be a strided view (fixed batch stride, contiguous rows): NumPy hands each product
    to BLAS without copying, as does CUDA's batched GEMM.
    """
    if q.device.type == "cpu" and cpu_backend() == "numpy":
        return torch.from_numpy(np.matmul(q.numpy(), keys.numpy().transpose(0, 2, 1)))
    return torch.matmul(q, keys.transpose(1, 2))


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
