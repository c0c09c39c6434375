"""Speed and memory of label propagation: the windowed engine vs the full-affinity reference.

Prints Markdown tables: the machine and settings; seconds per target frame (frame 0 excluded), peak
memory and argmax agreement for (a) :func:`sfc.propagation.propagate` (windowed, streaming) and
(b) :func:`sfc.propagation.reference.propagate_full` (full affinity, like the official
``mem_efficient_batched_affinity``), next to the official SFC code's figure measured when the project started (a constant, not re-run).
Optional: the engine's peak memory for several video lengths (``--lengths``, to show it is flat in
T) and the raw GEMM throughput of the CPU BLAS backends on the engine's shapes (``--blas``).

Defaults are the DAVIS-size setting: C=256 features on a 60 x 107 grid (480p at stride 8),
T=25 frames, context m=20, radius 12, top-k 10, temperature 0.05, K=5 labels. Features are random
but realistic for top-k: low-pass filtered noise drifting slowly across frames (spatially smooth,
temporally coherent), L2-normalised, with a fixed seed.

Each measurement runs in a fresh subprocess (this script re-invoked with a hidden ``--worker`` flag)
so that peak memory is not polluted by earlier runs: peak RSS increase over the RSS right after the
inputs are loaded (the kernel's high-water mark is reset through ``/proc/self/clear_refs``), and on
CUDA ``torch.cuda.max_memory_allocated`` over the allocation after loading.

Usage::

    .venv/bin/python benchmarks/propagation.py                      # full size (reference ~9 s/frame)
    .venv/bin/python benchmarks/propagation.py --blas --lengths 25,50
    .venv/bin/python benchmarks/propagation.py --height 20 --width 30 --frames 6 --channels 32  # smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfc.propagation.blas import cpu_backend
from sfc.propagation.engine import Propagator
from sfc.propagation.labels import downsample_labels
from sfc.propagation.reference import propagate_full

#: The official SFC code at the default setting, measured on the project's first 2-core machine (not re-run).
QUOTED_OFFICIAL_S_PER_FRAME = 8.9
QUOTED_OFFICIAL_PEAK_GIB = 5.6
DEFAULTS = {
    "frames": 25,
    "channels": 256,
    "height": 60,
    "width": 107,
    "context": 20,
    "radius": 12.0,
    "topk": 10,
    "temperature": 0.05,
    "labels": 5,
}


# ------------------------------------------------------------------------------------------ inputs
def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass of (N, C, h, w) maps, replicate padding."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C
    )


def make_inputs(
    frames: int, channels: int, height: int, width: int, labels: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic video features and first-frame labels.

    Returns:
        features: (T, C, h, w) L2-normalised: a smooth random canvas seen through a window drifting
            about half a cell per frame, plus a little smooth per-frame noise, so that nearby cells and
            consecutive frames are similar (top-k neighbours are local, as with real features);
        first_labels: (h, w, K) soft labels: K regions defined on frame 0's features at 8x resolution,
            resized to the grid with :func:`downsample_labels` (the official protocol's soft edges).
    """
    gen = torch.Generator().manual_seed(seed)
    pad = frames  # the window moves < 1 cell per frame
    canvas = _smooth(torch.randn(1, channels, height + 2 * pad, width + 2 * pad, generator=gen), 2.0)[0]
    canvas = canvas / canvas.std()
    feats = torch.empty(frames, channels, height, width)
    for t in range(frames):
        oy, ox = pad + round(0.3 * t), pad + round(0.5 * t)
        noise = _smooth(torch.randn(1, channels, height, width, generator=gen), 1.5)[0]
        feats[t] = canvas[:, oy : oy + height, ox : ox + width] + 0.3 * noise / noise.std()
    feats = F.normalize(feats, dim=1)
    # Regions: argmax of K random projections of frame 0 (background favoured), at image resolution.
    proj = torch.einsum("chw,ck->khw", feats[0], torch.randn(channels, labels, generator=gen))
    proj[0] += 0.5 * proj.std()
    big = F.interpolate(proj[None], scale_factor=8, mode="bilinear", align_corners=False)[0]
    onehot = F.one_hot(big.argmax(0), labels).float()
    return feats, downsample_labels(onehot, (height, width))


# --------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------- worker
_PHASES: dict[str, Any] = {}


def _timed_engine(features: torch.Tensor, first_labels: torch.Tensor, **params: Any) -> torch.Tensor:
    """:func:`propagate` with per-phase timings (kept in ``_PHASES``) and the steady-state time.

    Steady state: frames t > m, where every frame attends to m ring frames (earlier frames attend
    to padded copies of frame 0, which cost less).
    """
    T = features.shape[0]
    prop = Propagator(features[0], first_labels, timings=True, **params)
    assert prop.times is not None
    out = torch.empty(T, *first_labels.shape, device=features.device)
    out[0] = first_labels
    steady, n_steady = 0.0, 0
    before: dict[str, dict[str, float]] = {}
    for t in range(1, T):
        if t == params["context"] + 1:
            before = {"seconds": dict(prop.times.seconds), "flops": dict(prop.times.flops)}
        t0 = time.perf_counter()
        out[t] = prop.step(features[t])
        if t > params["context"]:
            steady += time.perf_counter() - t0
            n_steady += 1
    totals = {"seconds": dict(prop.times.seconds), "flops": dict(prop.times.flops)}
    _PHASES.update(
        all={**totals, "frames": T - 1, "s_per_frame": None},
        steady=None if not n_steady else {
            **{key: {k: v - before[key][k] for k, v in totals[key].items()} for key in ("seconds", "flops")},
            "frames": n_steady, "s_per_frame": steady / n_steady,
        },
    )
    return out

def run_worker(
    impl: str, inputs: Path, result: Path, n_frames: int, keep: int, params: dict, device: str
) -> None:
    """Measure one implementation in this (fresh) process; write timings, memory and outputs."""
    data = torch.load(inputs)
    feats, labels = data["features"][:n_frames], data["first_labels"]
    dev = torch.device(device)
    # Warm-up on a tiny input: backend selection, thread pools and CUDA context are not what we
    # measure (and are allocated once per process anyway).
    backend = cpu_backend() if dev.type == "cpu" else "torch (CUDA)"
    tiny_f, tiny_l = feats[:2, :, :8, :8].to(dev), labels[:8, :8].to(dev)
    fn = _timed_engine if impl == "engine" else propagate_full
    tiny_p = dict(params, topk=min(params["topk"], tiny_f.shape[-2] * tiny_f.shape[-1]))
    fn(tiny_f, tiny_l, **tiny_p)
    _PHASES.clear()
    feats, labels = feats.to(dev), labels.to(dev)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    reset_ok = _reset_peak_rss()
    rss_base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn(feats, labels, **params)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    hwm = _status_kib("VmHWM")
    record: dict[str, Any] = {
        "impl": impl,
        "frames": n_frames,
        "seconds": seconds,
        "s_per_frame": seconds / max(1, n_frames - 1),
        "rss_peak_mib": None if hwm is None or rss_base is None else (hwm - rss_base) / 1024,
        "rss_peak_exact": reset_ok,
        "cuda_peak_mib": (torch.cuda.max_memory_allocated() - cuda_base) / 2**20
        if dev.type == "cuda"
        else None,
        "backend": backend,
        "phases": dict(_PHASES),
        "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_model(),
    }
    torch.save({"record": record, "soft": out[1 : keep + 1].cpu()}, result)


def _spawn(impl: str, inputs: Path, n_frames: int, keep: int, params: dict, device: str) -> dict[str, Any]:
    """Run :func:`run_worker` in a fresh interpreter and return its record and outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.pt"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            impl,
            "--worker-inputs",
            str(inputs),
            "--worker-result",
            str(result),
            "--worker-frames",
            str(n_frames),
            "--worker-keep",
            str(keep),
            "--worker-params",
            json.dumps(params),
            "--device",
            device,
        ]
        subprocess.run(cmd, check=True)
        return torch.load(result)


# ----------------------------------------------------------------------------------------- tables
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _mem(rec: dict[str, Any]) -> str:
    if rec.get("cuda_peak_mib") is not None:
        host = "" if rec.get("rss_peak_mib") is None else f", host RSS +{rec['rss_peak_mib']:.0f} MiB"
        return f"{rec['cuda_peak_mib']:.1f} MiB (CUDA){host}"
    if rec.get("rss_peak_mib") is None:
        return "n/a"
    note = "" if rec["rss_peak_exact"] else " (upper bound: VmHWM not resettable)"
    return f"{rec['rss_peak_mib']:.1f} MiB{note}"


def _gflops(fn: Any, flops: float, threads: int) -> float:
    """GFLOP/s of ``fn`` (warm-up, then repeated for at least 0.3 s) with ``threads`` BLAS/torch threads."""
    from threadpoolctl import threadpool_limits

    n_threads = torch.get_num_threads()
    with threadpool_limits(limits=threads, user_api="blas"):
        torch.set_num_threads(threads)
        try:
            fn()  # warm-up
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.3 or reps < 3:
                fn()
                reps += 1
            dt = (time.perf_counter() - t0) / reps
        finally:
            torch.set_num_threads(n_threads)
    return flops / dt / 1e9


def machine_peak_gflops(device: str) -> tuple[float, float]:
    """Large square float32 GEMM (2048^3) on this machine: (GFLOP/s on all threads, on one thread).

    The arithmetic ceiling any propagation code can reach with float32 products (CPU: through the
    engine's BLAS backend; CUDA: torch, TF32 off).
    """
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(2)
    a, b = (torch.randn(2048, 2048, generator=gen).to(dev) for _ in range(2))
    flops = 2.0 * 2048**3
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        rate = _gflops(lambda: (a @ b, torch.cuda.synchronize()), flops, torch.get_num_threads())
        return rate, rate
    an, bn = a.numpy(), b.numpy()
    fn = (lambda: np.matmul(an, bn)) if cpu_backend() == "numpy" else (lambda: a @ b)
    return _gflops(fn, flops, torch.get_num_threads()), _gflops(fn, flops, 1)


def disc_pairs(h: int, w: int, radius: float) -> int:
    """(query, key) location pairs of one frame strictly closer than ``radius`` cells (clipped to the grid)."""
    reach = math.ceil(radius) - 1
    ys = torch.arange(h).view(h, 1)
    xs = torch.arange(w).view(1, w)
    total = 0
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx < radius * radius:
                total += int((((ys + dy) >= 0) & ((ys + dy) < h) & ((xs + dx) >= 0) & ((xs + dx) < w)).sum())
    return total


def _blas_rows(feats: torch.Tensor, labels: torch.Tensor, params: dict, device: str) -> list[list[str]]:
    """GFLOP/s of the raw GEMMs the engine issues, per backend and thread count.

    Shapes: a chunk of ``query_chunk`` queries by all of frame 0, and one query tile of n = th * tw
    queries against its context window in m frames (keys stored row-major as (m, R, C)), in the
    engine's orientation (keys as GEMM rows, (m, R, C) by (C, n)) and the transposed one.
    """
    C, h, w = feats.shape[1:]
    # Tile geometry only: a 1-channel, 1-context Propagator has the same tiles and bands (cheap).
    dev = torch.device(device)
    prop = Propagator(feats[0, :1].to(dev), labels.to(dev), **dict(params, context=min(1, params["context"])))
    n, m, nq = prop.th * prop.tw, params["context"], min(prop.query_chunk, h * w)
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(n, C, generator=gen).to(dev)
    qc = torch.randn(nq, C, generator=gen).to(dev)
    k0 = torch.randn(h * w, C, generator=gen).to(dev)
    out0 = torch.empty(nq, h * w, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cases: list[tuple[str, str, float, dict[str, Any]]] = [
        (
            "frame 0 (engine: query chunk)",
            f"{nq} x {C} by {C} x {h * w}",
            2.0 * nq * C * h * w,
            {
                "torch": lambda: (torch.matmul(qc, k0.T, out=out0), sync()),
                "numpy": lambda: np.matmul(qc.numpy(), k0.numpy().T, out=out0.numpy()),
            },
        )
    ]
    if prop.use_window and m > 0:
        R = min(h, prop.th + 2 * prop.layout.py) * prop.bw
        kw = torch.randn(m, R, C, generator=gen).to(dev)
        out_rows, out_q = torch.empty(m, R, n, device=dev), torch.empty(m, n, R, device=dev)
        cases += [
            (
                "context window (engine: keys as rows)",
                f"{m} x [{R} x {C} by {C} x {n}]",
                2.0 * m * n * C * R,
                {
                    "torch": lambda: (torch.matmul(kw, q.T, out=out_rows), sync()),
                    "numpy": lambda: np.matmul(kw.numpy(), q.numpy().T, out=out_rows.numpy()),
                },
            ),
            (
                "context window (queries as rows)",
                f"{m} x [{n} x {C} by {C} x {R}]",
                2.0 * m * n * C * R,
                {
                    "torch": lambda: (torch.matmul(q, kw.transpose(1, 2), out=out_q), sync()),
                    "numpy": lambda: np.matmul(q.numpy(), kw.numpy().transpose(0, 2, 1), out=out_q.numpy()),
                },
            ),
        ]
    names = {"torch": "torch (CUDA)" if dev.type == "cuda" else "torch (MKL)", "numpy": "numpy (OpenBLAS)"}
    backends = ["torch"] if dev.type == "cuda" else ["torch", "numpy"]
    n_threads = torch.get_num_threads()
    rows = []
    for label, shape, flops, fns in cases:
        for backend in backends:
            for threads in sorted({1, n_threads}) if dev.type == "cpu" else [n_threads]:
                rate = _gflops(fns[backend], flops, threads)
                threads_txt = str(threads) if dev.type == "cpu" else "-"
                rows.append([names[backend], threads_txt, shape, label, f"{rate:.1f}"])
    return rows


def _phase_rows(ph: dict[str, Any], threads: int, peak_one: float) -> list[list[str]]:
    """Per-phase thread-seconds, FLOPs and per-core rate of the engine, per target frame."""
    n = ph["frames"]
    total = sum(ph["seconds"].values())
    rows = []
    for phase, sec in ph["seconds"].items():
        flops = ph["flops"][phase]
        rate = f"{flops / sec / 1e9:.1f}" if flops and sec else "-"
        share = f"{100 * flops / sec / 1e9 / peak_one:.0f}%" if flops and sec else "-"
        rows.append([phase, f"{sec / n:.3f}", f"{flops / n / 1e9:.1f}" if flops else "-", rate, share, f"{100 * sec / total:.0f}%"])
    rows.append(["all (thread-seconds / threads = ideal wall)", f"{total / n:.3f} ({total / n / threads:.3f} wall)", "", "", "", "100%"])
    return rows


def _floor_rows(rec: dict[str, Any], args: argparse.Namespace, peak_all: float) -> list[list[str]]:
    """Measured s/frame against the floor: the FLOPs no exact method can skip, at this machine's peak.

    Minimal work of target frame t: every query against all of frame 0, and against the keys strictly
    inside its radius in each distinct context frame (min(t, m) of them: the padded copies of frame 0
    share one set of similarities). Rows: the whole timed video, and the steady state (t > m).
    """
    C, h, w, m = args.channels, args.height, args.width, args.context
    first = 2.0 * (h * w) ** 2 * C
    disc = 2.0 * disc_pairs(h, w, args.radius) * C if args.radius > 0 and m > 0 else 0.0
    T = args.frames
    cases = [("all timed frames (1..T-1)", rec["phases"]["all"], sum(first + disc * min(t, m) for t in range(1, T)) / (T - 1))]
    if rec["phases"]["steady"] is not None:
        cases.append(("steady state (t > m)", rec["phases"]["steady"], first + disc * m))
    rows = []
    for label, ph, minimal in cases:
        engine = sum(ph["flops"].values()) / ph["frames"]
        measured = ph["s_per_frame"] if ph["s_per_frame"] is not None else rec["s_per_frame"]
        floor = minimal / (peak_all * 1e9)
        rows.append([
            label, f"{minimal / 1e9:.1f}", f"{engine / 1e9:.1f} ({engine / minimal:.2f}x)",
            f"{floor:.3f}", f"{engine / (peak_all * 1e9):.3f}", f"{measured:.3f}", f"{measured / floor:.2f}x",
        ])
    return rows


# ------------------------------------------------------------------------------------------- main
def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = DEFAULTS
    p.add_argument("--frames", type=int, default=d["frames"], help="video length T (default %(default)s)")
    p.add_argument(
        "--channels", type=int, default=d["channels"], help="feature channels C (ResNet-18 res4: 256)"
    )
    p.add_argument("--height", type=int, default=d["height"], help="feature rows h (480p at stride 8: 60)")
    p.add_argument(
        "--width", type=int, default=d["width"], help="feature columns w (854 px at stride 8: 107)"
    )
    p.add_argument("--context", type=int, default=d["context"], help="context frames m (paper: 20)")
    p.add_argument("--radius", type=float, default=d["radius"], help="spatial radius in cells (paper FC: 12)")
    p.add_argument("--topk", type=int, default=d["topk"], help="neighbours kept (paper FC: 10)")
    p.add_argument(
        "--temperature", type=float, default=d["temperature"], help="softmax temperature (FC: 0.05)"
    )
    p.add_argument("--labels", type=int, default=d["labels"], help="number K of labels incl. background")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic features")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument(
        "--skip-reference", action="store_true", help="do not run the slow full-affinity reference"
    )
    p.add_argument(
        "--reference-frames",
        type=int,
        default=3,
        help="target frames the reference is timed on (~9 s each at full size on 2 CPU cores); "
        "agreement is computed on these frames only",
    )
    p.add_argument(
        "--blas", action="store_true", help="also time the raw GEMM backends on the engine's shapes"
    )
    p.add_argument(
        "--lengths", default="", help="comma-separated video lengths for the engine's peak memory, e.g. 25,50"
    )
    p.add_argument("--worker", choices=["engine", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--worker-inputs", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-keep", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-params", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error("--frames must be >= 2 (frame 0 is given, not propagated)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        run_worker(
            args.worker,
            args.worker_inputs,
            args.worker_result,
            args.worker_frames,
            args.worker_keep,
            json.loads(args.worker_params),
            args.device,
        )
        return
    params = {
        "topk": args.topk,
        "temperature": args.temperature,
        "radius": args.radius,
        "context": args.context,
    }
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    n_ref = max(1, min(args.reference_frames, args.frames - 1))
    n_max = max([args.frames, *lengths])
    feats, labels = make_inputs(n_max, args.channels, args.height, args.width, args.labels, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        torch.save({"features": feats, "first_labels": labels}, inputs)
        engine = _spawn("engine", inputs, args.frames, n_ref, params, args.device)
        ref = (
            None
            if args.skip_reference
            else _spawn("reference", inputs, n_ref + 1, n_ref, params, args.device)
        )
        length_recs = [_spawn("engine", inputs, n, 0, params, args.device)["record"] for n in lengths]

    rec = engine["record"]
    settings = (
        f"T={args.frames}, C={args.channels}, h x w={args.height} x {args.width}, m={args.context}, "
        f"radius={args.radius:g}, topk={args.topk}, temperature={args.temperature:g}, K={args.labels}, "
        f"seed={args.seed}"
    )
    blas_env = os.environ.get("SFC_CPU_BLAS") or "auto"
    machine = [
        ["CPU", f"{_cpu_model()}, {os.cpu_count()} cores, torch threads {rec['threads']}"],
        ["device", f"{args.device} ({rec['device_name']})"],
        [
            "versions",
            f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
        ],
        [
            "CPU BLAS backend",
            f"{rec['backend']} (SFC_CPU_BLAS={blas_env}, "
            f"SFC_TILE_THREADS={os.environ.get('SFC_TILE_THREADS', 'unset')})",
        ],
        ["settings", settings],
    ]
    out = ["## Label propagation benchmark", "", _table(["", ""], machine)]

    quoted_note = (
        "" if all(getattr(args, k) == v for k, v in DEFAULTS.items()) else " (other settings: not comparable)"
    )
    rows = [
        [
            "engine `propagate` (windowed)",
            f"{rec['s_per_frame']:.3f}",
            str(args.frames - 1),
            _mem(rec),
            "-" if ref is None else "",
            f"{QUOTED_OFFICIAL_S_PER_FRAME / rec['s_per_frame']:.1f}x{quoted_note}",
        ]
    ]
    if ref is not None:
        rrec = ref["record"]
        agree = (engine["soft"].argmax(-1) == ref["soft"].argmax(-1)).float().mean().item()
        diff = (engine["soft"] - ref["soft"]).abs().max().item()
        frames_txt = "frame 1" if n_ref == 1 else f"frames 1-{n_ref}"
        rows[0][4] = f"{100 * agree:.3f}% ({frames_txt}; max abs diff {diff:.1e})"
        rows.append(
            [
                "reference `propagate_full` (full affinity)",
                f"{rrec['s_per_frame']:.3f}",
                str(n_ref),
                _mem(rrec),
                "100% (itself)",
                f"{QUOTED_OFFICIAL_S_PER_FRAME / rrec['s_per_frame']:.1f}x{quoted_note}",
            ]
        )
        rows[0][5] += f"; {rrec['s_per_frame'] / rec['s_per_frame']:.1f}x vs reference"
    rows.append(
        [
            "official SFC code (measured on the project's first 2-core machine, not re-run)",
            f"{QUOTED_OFFICIAL_S_PER_FRAME:.1f}",
            "-",
            f"{QUOTED_OFFICIAL_PEAK_GIB:.1f} GiB",
            "-",
            "1.0x",
        ]
    )
    header = [
        "implementation",
        "s / frame",
        "frames timed",
        "peak memory",
        "argmax agreement vs reference",
        "speed-up vs official figure",
    ]
    out += ["", "### Speed and memory", "", _table(header, rows)]

    if length_recs:
        out += ["", "### Engine memory vs video length", ""]
        out.append(
            _table(
                ["frames T", "s / frame", "peak memory"],
                [[str(r["frames"]), f"{r['s_per_frame']:.3f}", _mem(r)] for r in length_recs],
            )
        )
    peak_all, peak_one = machine_peak_gflops(args.device)
    threads = rec["threads"] if args.device == "cpu" else 1
    phases = rec["phases"]["steady"] or rec["phases"]["all"]
    which = "steady state, t > m" if rec["phases"]["steady"] else "all timed frames: T <= m + 1, no steady state"
    out += ["", f"### Where the engine's time goes (per target frame, {which})", ""]
    out.append(
        _table(
            ["phase", "thread-seconds", "GFLOP", "GFLOP/s per core", "of 1-core peak", "share of time"],
            _phase_rows(phases, threads, peak_one),
        )
    )
    out += [
        "",
        "### Distance to this machine's floor",
        "",
        f"float32 GEMM peak (2048^3): {peak_all:.1f} GFLOP/s on {rec['threads']} threads, {peak_one:.1f} on one. "
        "Floor = minimal FLOPs at that peak.",
        "",
    ]
    out.append(
        _table(
            ["frames", "minimal GFLOP / frame", "engine GFLOP / frame", "floor s / frame",
             "engine FLOPs at peak, s / frame", "measured s / frame", "measured / floor"],
            _floor_rows(rec, args, peak_all),
        )
    )
    if args.blas:
        out += ["", "### Raw GEMM throughput on the engine's shapes", ""]
        out.append(
            _table(
                ["backend", "threads", "shape", "keys", "GFLOP/s"],
                _blas_rows(feats[:1], labels, params, args.device),
            )
        )
    sys.stdout.write("\n".join(out) + "\n")  # a report on stdout is this script's purpose


if __name__ == "__main__":
    main()
