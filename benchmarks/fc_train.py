"""Images/second of FC training: the project's trainer vs. a plain fp32 loop (prints a Markdown table).

"ours" runs :func:`sfc.training.train_fc` end to end on generated JPEG frames (DataLoader
workers, coordinate-aware crops, EMA schedule, logging; on CUDA bf16 autocast + channels_last).
"plain" is the obvious loop written for the comparison: the same model and optimizer, fp32, default
memory format, with crops taken in the main process. Both run the same number of steps after one
warm-up step; images/second counts frames (each gives two crops). On CPU both compute in fp32, so
the goal is "not slower"; on a GPU the goal is >= 2x from bf16 + channels_last. The trainer's other
options come from ``fc_pretrain`` in conf/base/parameters_fc_pretrain.yml (it has no defaults in code).

    python benchmarks/fc_train.py [--steps 4 --batch-size 16 --image-size 128 --device auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

import sfc  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from sfc.data.crops import TwoCropsWithCoords
from sfc.device import resolve_device
from sfc.training import FCTrainConfig, build_fc_model, build_optimizer, ema_momentum, train_fc

PARAMETERS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_fc_pretrain.yml"


def make_frames(folder: Path, n: int, size: tuple[int, int] = (240, 427)) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = (rng.random((*size, 3)) * 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
    return paths


def plain_loop(paths: list[str], config: FCTrainConfig, steps: int) -> float:
    device = resolve_device(config.device)
    model = build_fc_model(config).to(device)
    opt = build_optimizer(model, config)
    crops = TwoCropsWithCoords(config.image_size, scale=(config.scale_min, config.scale_max))
    gen = torch.Generator().manual_seed(0)
    images = [Image.open(p).convert("RGB") for p in paths]

    def step(k: int) -> None:
        pairs = [crops(images[(k * config.batch_size + i) % len(images)], generator=gen) for i in range(config.batch_size)]
        v1 = torch.stack([p.view1 for p in pairs]).to(device)
        v2 = torch.stack([p.view2 for p in pairs]).to(device)
        b1 = torch.stack([torch.as_tensor(p.box1) for p in pairs]).to(device)
        b2 = torch.stack([torch.as_tensor(p.box2) for p in pairs]).to(device)
        model.update_target(ema_momentum(k, steps + 1, config.momentum_base))
        loss = model(v1, v2, b1, b2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(1, steps + 1):
        step(k)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - t0)


def ours(paths: list[str], config: FCTrainConfig, steps: int, work: Path) -> float:
    """Warm-up: a 1-step run; then the same run resumed to ``steps + 1`` (only those steps are timed)."""
    train_fc(paths, dataclasses.replace(config, steps=1, work_dir=str(work)))
    result = train_fc(paths, dataclasses.replace(config, steps=steps + 1, work_dir=str(work)))
    return result.images_per_second


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parameters", type=Path, default=PARAMETERS, help="YAML with the fc_pretrain group")
    args = ap.parse_args(argv)
    base = yaml.safe_load(args.parameters.read_text(encoding="utf-8"))["fc_pretrain"]
    with tempfile.TemporaryDirectory() as tmp:
        config = FCTrainConfig.from_dict({
            **base, "steps": args.steps + 1, "batch_size": args.batch_size, "image_size": args.image_size,
            "num_workers": args.workers, "device": args.device, "checkpoint_every": 10**6, "log_every": 10**6,
            "progress": False, "nproc_per_node": 1, "work_dir": str(Path(tmp) / "run"),
        })
        device = resolve_device(config.device)
        paths = make_frames(Path(tmp), args.frames)
        plain = plain_loop(paths, config, args.steps)
        mine = ours(paths, config, args.steps, Path(tmp) / "run")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    out = [
        "## FC training throughput",
        "",
        f"device: {device} ({name}); torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"batch {args.batch_size} x 2 crops of {args.image_size} px; {args.steps} timed steps",
        "",
        "| loop | images / s | relative |",
        "|---|---|---|",
        f"| plain fp32 loop | {plain:.2f} | 1.00x |",
        f"| sfc train_fc ({'bf16 autocast + channels_last' if device.type == 'cuda' else 'fp32'}) | {mine:.2f} | {mine / plain:.2f}x |",
        "",
        "(both exclude one warm-up step; ours includes its data loader and the final resume-state write)",
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
