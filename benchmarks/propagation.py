"""Speed and memory of label propagation: the windowed engine vs the full-affinity reference.

Prints Markdown tables: the machine and settings; seconds per target frame (frame 0 excluded), peak
memory and argmax agreement for (a) :func:`sfc.propagation.propagate` (windowed, streaming) and
(b) :func:`sfc.propagation.reference.propagate_full` (full affinity, like the official
``mem_efficient_batched_affinity``), next to the official SFC code's figure quoted from the issue.
Optional: the engine's peak memory for several video lengths (``--lengths``, to show it is flat in
T) and the raw GEMM throughput of the CPU BLAS backends on the engine's shapes (``--blas``).

Defaults are the issue's DAVIS-size setting: C=256 features on a 60 x 107 grid (480p at stride 8),
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
from sfc.propagation.engine import Propagator, propagate
from sfc.propagation.labels import downsample_labels
from sfc.propagation.reference import propagate_full

#: The official SFC code on the issue's setting, as quoted in the issue (not measured here).
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
    fn = propagate if impl == "engine" else propagate_full
    tiny_p = dict(params, topk=min(params["topk"], tiny_f.shape[-2] * tiny_f.shape[-1]))
    fn(tiny_f, tiny_l, **tiny_p)
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


def _blas_rows(feats: torch.Tensor, labels: torch.Tensor, params: dict, device: str) -> list[list[str]]:
    """GFLOP/s of the raw GEMMs the engine issues per query tile, per backend and thread count.

    Shapes of one query tile of n = th * tw queries: (n, C) by (C, h*w) against frame 0, and a batch
    of m products (n, C) by (C, rows * band width) against the context window (keys stored
    row-major as (m, R, C) and multiplied through transposed views, as the engine does).
    """
    from threadpoolctl import threadpool_limits

    C, h, w = feats.shape[1:]
    # Tile geometry only: a 1-channel, 1-context Propagator has the same tiles and bands (cheap).
    dev = torch.device(device)
    prop = Propagator(feats[0, :1].to(dev), labels.to(dev), **dict(params, context=min(1, params["context"])))
    n, m = prop.th * prop.tw, params["context"]
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(n, C, generator=gen).to(dev)
    k0 = torch.randn(C, h * w, generator=gen).to(dev)
    cases: list[tuple[str, str, float, dict[str, Any]]] = []
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cases.append(
        (
            "frame 0",
            f"{n} x {C} by {C} x {h * w}",
            2.0 * n * C * h * w,
            {"torch": lambda: (q @ k0, sync()), "numpy": lambda: np.matmul(q.numpy(), k0.numpy())},
        )
    )
    if prop.use_window and m > 0:
        R = min(h, prop.th + 2 * prop.py) * prop.bw
        kw = torch.randn(m, R, C, generator=gen).to(dev)
        cases.append(
            (
                "context window",
                f"{m} x [{n} x {C} by {C} x {R}]",
                2.0 * m * n * C * R,
                {
                    "torch": lambda: (torch.matmul(q, kw.transpose(1, 2)), sync()),
                    "numpy": lambda: np.matmul(q.numpy(), kw.numpy().transpose(0, 2, 1)),
                },
            )
        )
    names = {"torch": "torch (CUDA)" if dev.type == "cuda" else "torch (MKL)", "numpy": "numpy (OpenBLAS)"}
    backends = ["torch"] if dev.type == "cuda" else ["torch", "numpy"]
    n_threads = torch.get_num_threads()
    rows = []
    for label, shape, flops, fns in cases:
        for backend in backends:
            for threads in sorted({1, n_threads}) if dev.type == "cpu" else [n_threads]:
                with threadpool_limits(limits=threads, user_api="blas"):
                    torch.set_num_threads(threads)
                    try:
                        fns[backend]()  # warm-up
                        reps, t0 = 0, time.perf_counter()
                        while time.perf_counter() - t0 < 0.3 or reps < 3:
                            fns[backend]()
                            reps += 1
                        dt = (time.perf_counter() - t0) / reps
                    finally:
                        torch.set_num_threads(n_threads)
                threads_txt = str(threads) if dev.type == "cpu" else "-"
                rows.append([names[backend], threads_txt, shape, label, f"{flops / dt / 1e9:.1f}"])
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
            "official SFC code (quoted from the issue, DAVIS-size defaults, same machine kind)",
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
        "speed-up vs quoted official",
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
    if args.blas:
        out += ["", "### Raw GEMM throughput on the engine's per-tile shapes", ""]
        out.append(
            _table(
                ["backend", "threads", "shape", "keys", "GFLOP/s"],
                _blas_rows(feats[:1], labels, params, args.device),
            )
        )
    sys.stdout.write("\n".join(out) + "\n")  # a report on stdout is this script's purpose


if __name__ == "__main__":
    main()
