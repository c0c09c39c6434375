"""Cost of a late-fusion grid search: the shared-similarity grid vs independent fused evaluations.

Prints Markdown tables: the machine and settings; wall time and peak memory of

(a) :class:`sfc.propagation.grid.FusionGridPropagator` propagating every configuration of a
    5 lambda x 3 top-k x 3 r' grid (45 configurations) at once, frame by frame;
(b) the same plus the per-configuration upsampling to 480p and argmax that scoring needs;
(c) one straightforward fused evaluation per radius: :func:`sfc.fusion.late_fusion` of the two
    feature maps frame by frame, then :class:`sfc.propagation.engine.Propagator` (what
    ``evaluate_davis`` does), at
    the grid's top-k/lambda of the paper (the cost depends on r' and hardly on lambda or top-k);
(d) 45 independent evaluations: measured one by one with ``--all-independent`` (about 45 x (c)),
    otherwise estimated as 15 x the sum of the three radii's measured costs, and labelled as such;

and the goal ratio: grid time / one evaluation at the largest radius (goal <= 3).

Inputs are the propagation benchmark's synthetic features (smooth, temporally coherent, see
``benchmarks/propagation.py``) at DAVIS size: a semantic map (ResNet-50 layer3: C=1024) and a
fine map (ResNet-18: C=256) on a 60 x 107 grid (480p at stride 8), T=25 frames, context m=20,
temperature 0.1, K=5 labels. Every measurement runs in a fresh subprocess so peak memory (VmHWM
increase over the RSS after loading the inputs) is not polluted by earlier runs.

Usage::

    .venv/bin/python benchmarks/fusion_search.py                          # DAVIS size (~10 min on 2 cores)
    .venv/bin/python benchmarks/fusion_search.py --height 20 --width 30 --frames 6   # smoke
    .venv/bin/python benchmarks/fusion_search.py --all-independent        # measure all 45 (slow)
    .venv/bin/python benchmarks/fusion_search.py --evaluations-only       # one fused evaluation per r'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import _cpu_model, _reset_peak_rss, _status_kib, _table, make_inputs  # noqa: E402

from sfc.fusion import late_fusion  # noqa: E402
from sfc.propagation.blas import cpu_backend  # noqa: E402
from sfc.propagation.engine import Propagator  # noqa: E402
from sfc.propagation.grid import FusionGridPropagator, make_grid  # noqa: E402
from sfc.propagation.labels import upsample_argmax  # noqa: E402

LAMBDAS = [0.5, 1.0, 1.75, 2.5, 4.0]
TOPKS = [5, 10, 15]
RADII = [9.0, 12.0, 15.0]


def _inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sem, labels = make_inputs(args.frames, args.semantic_channels, args.height, args.width, args.labels, seed=1)
    fine, _ = make_inputs(args.frames, args.fine_channels, args.height, args.width, args.labels, seed=2)
    return sem, fine, labels


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    sem, fine, labels = _inputs(args)
    points = make_grid(LAMBDAS, TOPKS, RADII, [args.temperature], [args.context])
    size = (args.height * 8, args.width * 8)
    exact = _reset_peak_rss()
    rss0 = _status_kib("VmRSS")
    t0 = time.perf_counter()
    if args.worker in ("grid", "grid+argmax"):
        prop = FusionGridPropagator(sem[0], fine[0], labels, points)
        for t in range(1, args.frames):
            outs = prop.step(sem[t], fine[t])
            if args.worker == "grid+argmax":
                for soft in outs:
                    upsample_argmax(soft, size)
        n_configs = len(points)
    else:  # one fused evaluation: "eval:<lambda>:<topk>:<radius>"
        _, lam, k, r = args.worker.split(":")
        # Frame by frame, as evaluate_davis fuses them: memory is the engine's, not the video's.
        def fused(t: int) -> torch.Tensor:
            return late_fusion(sem[t : t + 1], fine[t : t + 1], float(lam))[0]

        prop = Propagator(
            fused(0), labels, topk=int(k), temperature=args.temperature, radius=float(r), context=args.context
        )
        for t in range(1, args.frames):
            upsample_argmax(prop.step(fused(t)), size)
        n_configs = 1
    seconds = time.perf_counter() - t0
    hwm = _status_kib("VmHWM")
    return {
        "seconds": seconds,
        "configs": n_configs,
        "rss_peak_mib": None if hwm is None or rss0 is None else (hwm - rss0) / 1024,
        "rss_exact": exact,
    }


def _spawn(args: argparse.Namespace, what: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [sys.executable, __file__, "--worker", what, "--worker-result", str(out)]
        for name in ("frames", "height", "width", "semantic_channels", "fine_channels", "context", "labels"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        argv += ["--temperature", str(args.temperature)]
        subprocess.run(argv, check=True, env={**os.environ})
        return json.loads(out.read_text())


def _emit(text: str) -> None:
    sys.stdout.write(text + "\n")  # a report on stdout is this script's purpose
    sys.stdout.flush()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=25, help="video length T (default %(default)s)")
    p.add_argument("--height", type=int, default=60, help="feature rows h (480p at stride 8: 60)")
    p.add_argument("--width", type=int, default=107, help="feature columns w (854 px at stride 8: 107)")
    p.add_argument("--semantic-channels", type=int, default=1024, help="Cs (ResNet-50 layer3: 1024)")
    p.add_argument("--fine-channels", type=int, default=256, help="Cf (ResNet-18 layer3: 256)")
    p.add_argument("--context", type=int, default=20, help="context frames m (paper: 20)")
    p.add_argument("--temperature", type=float, default=0.1, help="softmax temperature (SFC: 0.1)")
    p.add_argument("--labels", type=int, default=5, help="labels K incl. background")
    p.add_argument("--all-independent", action="store_true", help="measure all 45 independent evaluations")
    p.add_argument(
        "--evaluations-only", action="store_true", help="only the one-evaluation rows (speed and memory of evaluate_davis)"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        args.worker_result.write_text(json.dumps(run_worker(args)))
        return
    n_target = args.frames - 1
    _emit("## Fusion grid search benchmark\n")
    _emit(
        _table(
            ["machine", "threads", "CPU BLAS", "torch", "features", "grid"],
            [[
                _cpu_model(), str(torch.get_num_threads()), cpu_backend(), torch.__version__,
                f"T={args.frames}, Cs={args.semantic_channels} + Cf={args.fine_channels}, {args.height}x{args.width}, "
                f"m={args.context}, temperature {args.temperature}, K={args.labels}",
                f"lambda {LAMBDAS} x top-k {TOPKS} x r' {[int(r) for r in RADII]} = "
                f"{len(LAMBDAS) * len(TOPKS) * len(RADII)} configurations",
            ]],
        )
    )
    rows, res = [], {}
    for what in () if args.evaluations_only else ("grid", "grid+argmax"):
        res[what] = r = _spawn(args, what)
        rows.append([f"shared grid ({what}), 45 configurations", f"{r['seconds']:.1f}", f"{r['seconds'] / n_target:.2f}", _mib(r)])
    for radius in RADII:
        what = f"eval:1.75:15:{radius:g}"
        res[what] = r = _spawn(args, what)
        rows.append([f"one fused evaluation, r'={radius:g} (lambda 1.75, k 15)", f"{r['seconds']:.1f}", f"{r['seconds'] / n_target:.2f}", _mib(r)])
    if args.evaluations_only:
        _emit("\n" + _table(["implementation", "wall s", "s / target frame", "peak memory"], rows))
        return
    one = res[f"eval:1.75:15:{RADII[-1]:g}"]["seconds"]
    if args.all_independent:
        total = 0.0
        for lam in LAMBDAS:
            for k in TOPKS:
                for radius in RADII:
                    total += _spawn(args, f"eval:{lam}:{k}:{radius:g}")["seconds"]
        label = "45 independent fused evaluations (measured)"
    else:
        total = len(LAMBDAS) * len(TOPKS) * sum(res[f"eval:1.75:15:{r:g}"]["seconds"] for r in RADII)
        label = "45 independent fused evaluations (15 x the three measured radii)"
    rows.append([label, f"{total:.1f}", f"{total / n_target:.2f}", "as one evaluation"])
    _emit("\n" + _table(["implementation", "wall s", "s / target frame", "peak memory"], rows))
    grid_s, grid_arg_s = res["grid"]["seconds"], res["grid+argmax"]["seconds"]
    _emit(
        "\n"
        + _table(
            ["ratio", "value", "goal"],
            [
                ["grid / one evaluation (largest r')", f"{grid_s / one:.2f}x", "<= 3x"],
                ["grid+argmax / one evaluation (largest r')", f"{grid_arg_s / one:.2f}x", "<= 3x"],
                ["45 independent / grid", f"{total / grid_s:.1f}x faster", ""],
            ],
        )
    )


def _mib(r: dict[str, Any]) -> str:
    if r.get("rss_peak_mib") is None:
        return "n/a"
    return f"{r['rss_peak_mib']:.0f} MiB" + ("" if r["rss_exact"] else " (upper bound)")


if __name__ == "__main__":
    main()
