"""One prepared check of the project's GPU paths: prints one table and writes it as JSON.

A GPU machine may be available only for minutes, so everything that needs one is in this script,
ready to run (``benchmarks/gpu_check.sh``), sized to finish in about 8 minutes on one GPU:

``cuda_tests``
    the CUDA twin tests of the suite (``pytest -k cuda`` on the files that hold them); on a GPU
    none may skip.
``fc_train``
    FC training with bf16 autocast + channels_last against fp32 (``amp: false``) from the same seed
    and data: images/s, peak memory, and the losses' agreement step by step.
``engine_golden``
    the propagation engine on the golden ``realistic`` case (DAVIS size, the paper's FC settings):
    s/frame and argmax agreement with the official code's output.
``grid_golden``
    the fusion grid (8 configurations) on the golden ``fusion`` case: s/frame and agreement of the
    official point.
``evaluate_davis``
    a DAVIS-size evaluation on generated data at full resolution (480 x 854): ResNet-50 + ResNet-18
    (random init: weights do not change the cost) late-fused, frames/s end to end (decoding, both
    networks, fusion, propagation, upsampling and argmax) and peak memory.
``ddp``
    two training processes through the project's launcher (NCCL on 2 GPUs; gloo on CPU in
    ``--dry-run``); skipped on a machine with fewer than 2 GPUs.

``--dry-run`` runs every step at toy size on whatever device there is (CPU here), so the script
is known to work before a GPU is lent; the test suite runs it. Golden cases are read from
``--golden`` (default: ``$SFC_GOLDEN``, else ``../shared/golden`` beside the repository).

Usage::

    benchmarks/gpu_check.sh                      # on the GPU machine (~8 min)
    benchmarks/gpu_check.sh --dry-run            # anywhere, ~2 min on 2 CPU cores
    benchmarks/gpu_check.sh --steps engine_golden,grid_golden --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch  # noqa: E402
import yaml  # noqa: E402

import sfc  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.golden readers
sys.path.insert(0, str(ROOT / "benchmarks"))
from propagation import _cpu_model, _reset_peak_rss, _status_kib, _table  # noqa: E402

#: Files holding the suite's CUDA twin tests (selected with ``-k cuda``).
CUDA_TEST_FILES = (
    "tests/propagation/test_engine.py",
    "tests/training/test_loop.py",
    "tests/training/test_config.py",
    "tests/test_config.py",
    "tests/test_atomic_device.py",
    "tests/propagate/test_settings.py",
)
STEPS = ("cuda_tests", "fc_train", "engine_golden", "grid_golden", "evaluate_davis", "ddp")


@dataclasses.dataclass
class Sizes:
    """How big each step runs: the GPU sizes, or toy sizes for ``--dry-run``."""

    train_steps: int
    train_batch: int
    train_image: int
    train_workers: int
    golden_frames: int | None  # None = the whole golden video
    davis_frames: int
    davis_size: tuple[int, int]
    ddp_steps: int

    @classmethod
    def for_run(cls, dry_run: bool) -> Sizes:
        if dry_run:
            return cls(3, 4, 32, 0, 4, 4, (64, 96), 2)
        return cls(30, 96, 256, 8, None, 50, (480, 854), 20)


class Memory:
    """Peak memory of a step: CUDA allocator peak and host RSS high-water mark above the start."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Memory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda0 = torch.cuda.memory_allocated(self.device)
        self.exact = _reset_peak_rss()
        self.rss0 = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kib("VmHWM")
        self.host_mib = None if hwm is None or self.rss0 is None else (hwm - self.rss0) / 1024
        self.cuda_mib = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_mib = (torch.cuda.max_memory_allocated(self.device) - self.cuda0) / 2**20

    def figures(self) -> dict[str, float]:
        """Peak MiB figures that exist on this machine (CUDA only on a GPU)."""
        out = {"peak_cuda_mib": self.cuda_mib, "peak_host_rss_mib": self.host_mib}
        return {k: round(v, 1) for k, v in out.items() if v is not None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _base_parameters(name: str) -> dict[str, Any]:
    """The ``conf/base`` parameter file ``name`` (defaults live there, not in code)."""
    return yaml.safe_load((ROOT / "conf" / "base" / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ steps
def step_cuda_tests(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", f"--junitxml={report}"]
        proc = subprocess.run([*cmd, *CUDA_TEST_FILES], cwd=ROOT, capture_output=True, text=True)
        import xml.etree.ElementTree as ET

        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    figures = {"passed": passed, "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"]}
    problems = []
    if proc.returncode != 0:
        problems.append("pytest failed:\n" + proc.stdout[-3000:])
    if device.type == "cuda" and counts["skipped"]:
        problems.append(f"{counts['skipped']} CUDA test(s) skipped on a CUDA machine")
    return {"figures": figures, "problems": problems}


def _train_config(sizes: Sizes, device: torch.device, work: Path, **over: Any) -> Any:
    from sfc.training import FCTrainConfig

    base = _base_parameters("parameters_fc_pretrain.yml")["fc_pretrain"]
    return FCTrainConfig.from_dict({
        **base, "steps": sizes.train_steps, "batch_size": sizes.train_batch, "image_size": sizes.train_image,
        "num_workers": sizes.train_workers, "device": str(device), "checkpoint_every": 10**6, "log_every": 1,
        "progress": False, "nproc_per_node": 1, "work_dir": str(work), **over,
    })


def _losses(work: Path) -> list[float]:
    from sfc.training import METRICS_NAME, read_metrics

    return [float(json.loads(line)["loss"]) for line in read_metrics(work / METRICS_NAME)]


def step_fc_train(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    from fc_train import make_frames

    from sfc.training import train_fc

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = make_frames(Path(tmp), max(16, sizes.train_batch))
        runs = {}
        for name, amp in (("fp32", False), ("bf16", True)):
            work = Path(tmp) / name
            with Memory(device) as mem:
                result = train_fc(frames, _train_config(sizes, device, work, amp=amp))
            runs[name] = _losses(work)
            figures[f"{name}_images_per_s"] = round(result.images_per_second, 2)
            mib = mem.cuda_mib if device.type == "cuda" else mem.host_mib
            figures[f"{name}_peak_mib"] = None if mib is None else round(mib)
    a, b = runs["fp32"], runs["bf16"]
    problems = []
    if len(a) != sizes.train_steps or len(b) != sizes.train_steps:
        problems.append(f"expected {sizes.train_steps} logged losses, got {len(a)} (fp32) and {len(b)} (bf16)")
    rel = [abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a, b, strict=False)]
    figures["final_loss_fp32"] = round(a[-1], 5) if a else None
    figures["final_loss_bf16"] = round(b[-1], 5) if b else None
    figures["max_rel_loss_diff"] = round(max(rel), 5) if rel else None
    figures["speedup_bf16"] = round(figures["bf16_images_per_s"] / figures["fp32_images_per_s"], 2)
    if not all(math.isfinite(x) for x in a + b):
        problems.append("non-finite loss")
    # bf16 rounds activations to 8 bits of mantissa: losses drift apart slowly, not at once.
    if rel and device.type == "cuda" and max(rel) > 0.05:
        problems.append(f"bf16 and fp32 losses differ by up to {max(rel):.1%} (allowed 5%)")
    if rel and device.type != "cuda" and max(rel) > 1e-6:
        problems.append(f"on CPU both runs are fp32 and must agree; they differ by {max(rel):.2g}")
    return {"figures": figures, "problems": problems}


def _golden_case(name: str, frames: int | None) -> Any:
    from tests.golden.conftest import GOLDEN, load_named_case

    if not (GOLDEN / "propagation" / "manifest.json").is_file():
        raise FileNotFoundError(
            f"{GOLDEN / 'propagation' / 'manifest.json'} not found: pass --golden DIR (the golden outputs "
            "folder holding propagation/), or copy it beside the repository as ../shared/golden"
        )
    case = load_named_case(name)
    if frames is not None:
        cut = {k: v[:frames] for k, v in (
            ("expected", case.expected), ("features", case.features), ("fc_features", case.fc_features),
            ("semantic_features", case.semantic_features), ("fused_features", case.fused_features),
        ) if v is not None}
        case = dataclasses.replace(case, **cut)
    return case


def _agreement(case: Any, ours: torch.Tensor, what: str) -> tuple[dict[str, Any], list[str]]:
    from tests.golden.conftest import assert_matches_expected

    try:
        diff, agree = assert_matches_expected(case, ours, what)
    except AssertionError as exc:
        return {}, [str(exc)]
    return {"max_abs_diff": float(f"{diff:.3g}"), "argmax_agreement": round(agree, 6)}, []


def step_engine_golden(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    from sfc.propagation.engine import propagate

    case = _golden_case("realistic", sizes.golden_frames)
    feats = torch.from_numpy(case.features).to(device)
    labels = torch.from_numpy(case.first_labels).to(device)
    kw = {"topk": case.topk, "temperature": case.temperature, "radius": case.radius, "context": case.context}
    propagate(feats[:2], labels, **kw)  # warm-up: kernels, BLAS choice, thread pools
    with Memory(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        ours = propagate(feats, labels, **kw)
        _sync(device)
        seconds = time.perf_counter() - t0
    figures, problems = _agreement(case, ours, "engine")
    T, C, h, w = feats.shape
    figures = {"s_per_frame": round(seconds / (T - 1), 4), "frames": T, "grid": f"{C}x{h}x{w}", **figures, **mem.figures()}
    return {"figures": figures, "problems": problems}


def step_grid_golden(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    import torch.nn.functional as F

    from sfc.propagation.grid import GridPoint, iter_grid_propagate, make_grid

    case = _golden_case("fusion", sizes.golden_frames)
    points = make_grid([0.5, case.lam], [5, case.topk], [9, case.radius], [case.temperature], [case.context])
    index = points.index(GridPoint(case.lam, case.topk, case.radius, case.temperature, case.context))
    semantic = F.normalize(torch.from_numpy(case.semantic_features), dim=1).to(device)
    fine = F.normalize(torch.from_numpy(case.fc_features), dim=1).to(device)
    labels = torch.from_numpy(case.first_labels).to(device)
    with Memory(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        ours = torch.stack([maps[index] for maps in iter_grid_propagate(zip(semantic, fine, strict=True), labels, points)])
        _sync(device)
        seconds = time.perf_counter() - t0
    figures, problems = _agreement(case, ours, f"grid of {len(points)} points")
    T = semantic.shape[0]
    figures = {"s_per_frame": round(seconds / (T - 1), 4), "configurations": len(points), **figures, **mem.figures()}
    return {"figures": figures, "problems": problems}


def step_evaluate_davis(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    from sfc.config import BackboneConfig, FusionConfig, PropagationConfig, SemanticConfig
    from sfc.data.demo import make_demo_davis
    from sfc.evaluation.common import load_networks
    from sfc.evaluation.davis.evaluate import predict_sequence
    from sfc.evaluation.davis.reader import load_sequence, read_split

    base = _base_parameters("parameters.yml")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_demo_davis(Path(tmp) / "davis", n_sequences=1, n_frames=sizes.davis_frames, size=sizes.davis_size)
        (seq_name,) = read_split(root, "val")
        networks = load_networks(
            BackboneConfig.from_dict({**base["backbone"], "checkpoint": None}),
            SemanticConfig.from_dict({**base["semantic"], "arch": "resnet50", "checkpoint": None}),
            FusionConfig.from_dict(base["fusion"]),
            str(device),
        )
        propagation = PropagationConfig.from_dict(base["propagation"])
        seq = load_sequence(root, seq_name)
        with Memory(device) as mem:
            t0 = time.perf_counter()
            n = sum(1 for _ in predict_sequence(seq, networks, propagation, scale=1.0, progress=False))
            _sync(device)
            seconds = time.perf_counter() - t0
    figures = {
        "frames": n, "size": f"{sizes.davis_size[0]}x{sizes.davis_size[1]}",
        "frames_per_s": round(n / seconds, 3), "seconds": round(seconds, 1), **mem.figures(),
    }
    problems = [] if n == sizes.davis_frames else [f"predicted {n} frames of {sizes.davis_frames}"]
    return {"figures": figures, "problems": problems}


def step_ddp(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    from fc_train import make_frames

    from sfc.training import launch_fc_training

    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return {"skipped": f"needs 2 GPUs, found {torch.cuda.device_count()}"}
    if device.type != "cuda" and not args.dry_run:
        return {"skipped": "needs CUDA (gloo on CPU runs in --dry-run and in the test suite)"}
    with tempfile.TemporaryDirectory() as tmp:
        frames = make_frames(Path(tmp), max(16, sizes.train_batch))
        config = _train_config(sizes, device if device.type == "cuda" else torch.device("cpu"), Path(tmp) / "run",
                               steps=sizes.ddp_steps, nproc_per_node=2, num_workers=0)
        t0 = time.perf_counter()
        result = launch_fc_training(frames, config)
        seconds = time.perf_counter() - t0
    if result is None:
        return {"figures": {}, "problems": ["the launcher returned no result on rank 0"]}
    figures = {
        "world_size": result.world_size, "backend": "nccl" if device.type == "cuda" else "gloo",
        "steps": result.final_step, "images_per_s": round(result.images_per_second, 2),
        "replicas_identical": result.replicas_identical, "seconds": round(seconds, 1),
    }
    problems = [] if result.replicas_identical else ["replicas differ after training"]
    return {"figures": figures, "problems": problems}


STEP_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Sizes, torch.device], dict[str, Any]]] = {
    "cuda_tests": step_cuda_tests,
    "fc_train": step_fc_train,
    "engine_golden": step_engine_golden,
    "grid_golden": step_grid_golden,
    "evaluate_davis": step_evaluate_davis,
    "ddp": step_ddp,
}


# ------------------------------------------------------------------------------------------- main
def _machine(device: torch.device) -> dict[str, Any]:
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "device": str(device),
        "gpus": gpus,
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="every step at toy size on any device (CPU: ~2 min)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda (default when present) or cpu")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    p.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where the table is written (default %(default)s)")
    p.add_argument("--golden", type=Path, default=None, help="golden outputs folder (default $SFC_GOLDEN or ../shared/golden)")
    args = p.parse_args(argv)
    unknown = [s for s in args.steps.split(",") if s and s not in STEPS]
    if unknown:
        p.error(f"unknown step(s) {unknown}; choose from {list(STEPS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.golden is not None:
        os.environ["SFC_GOLDEN"] = str(args.golden.resolve())
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.stderr.write("--device cuda: no CUDA device is visible (nvidia-smi?); use --dry-run on CPU\n")
        return 2
    sizes = Sizes.for_run(args.dry_run)
    rows: list[dict[str, Any]] = []
    for name in [s for s in args.steps.split(",") if s]:
        sys.stderr.write(f"[gpu_check] {name} ...\n")
        t0 = time.perf_counter()
        try:
            out = STEP_FUNCTIONS[name](args, sizes, device)
        except Exception as exc:  # one broken step must not hide the others' results
            out = {"figures": {}, "problems": [f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"]}
        if "skipped" in out:
            status = "skipped"
        else:
            status = "FAIL" if out["problems"] else "ok"
        rows.append({
            "step": name, "status": status, "seconds": round(time.perf_counter() - t0, 1),
            "figures": out.get("figures", {}), "problems": out.get("problems", []), "note": out.get("skipped", ""),
        })
        sys.stderr.write(f"[gpu_check] {name}: {status} in {rows[-1]['seconds']} s\n")
    report = {"machine": _machine(device), "dry_run": args.dry_run, "steps": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.json)
    m = report["machine"]
    lines = [
        f"## GPU check{' (dry run: toy sizes)' if args.dry_run else ''}",
        "",
        f"{m['date']}; device {m['device']} ({', '.join(m['gpus']) or m['cpu']}); torch {m['torch']} (CUDA {m['cuda']})",
        "",
        _table(
            ["step", "status", "wall s", "figures"],
            [[r["step"], r["status"], f"{r['seconds']:.1f}",
              r["note"] or ", ".join(f"{k} {v}" for k, v in r["figures"].items())] for r in rows],
        ),
    ]
    for r in rows:
        for problem in r["problems"]:
            lines += ["", f"**{r['step']}**: {problem}"]
    lines += ["", f"JSON: {args.json}"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
