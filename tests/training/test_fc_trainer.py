"""Tests of the FC trainer: tiny CPU runs, checkpoints and export, resume after SIGKILL, errors, DDP.

Every run uses 16 x 16 crops (a 2 x 2 feature map), batches of 2-4 frames, narrow heads and a few
steps, so the ResNet-18 forward stays cheap; each checkpoint still holds the full ResNet-18 (~180 MB).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sfc.models import FineGrained, load_backbone
from sfc.training import (
    FCTrainConfig,
    FrameDataset,
    ResumeError,
    StepSampler,
    TrainingDivergedError,
    atomic_save,
    ema_momentum,
    launch_fc_training,
    load_train_state,
    train_fc,
)
from sfc.training.fc_trainer import build_fc_model, build_frame_dataset, build_optimizer, collate_crops

TINY = {
    "image_size": 16,
    "batch_size": 2,
    "projection_hidden_dim": 16,
    "projection_dim": 8,
    "prediction_hidden_dim": 16,
    "num_workers": 0,
    "min_size": 16,
    "progress": False,
}
#: Single-threaded children: equal thread counts make CPU runs bit-reproducible and avoid oversubscription.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _config(**overrides: object) -> FCTrainConfig:
    return FCTrainConfig(**{**TINY, **overrides})  # type: ignore[arg-type]


def _write_frames(root: Path, n: int, size: tuple[int, int] = (24, 20), seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _write_frames(tmp_path_factory.mktemp("frames"), 6)


def _model_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ---------------------------------------------------------------------------------------------------
# Data stream
# ---------------------------------------------------------------------------------------------------


def test_stream_is_seeded_per_position_and_covers_each_epoch(frames: list[str]) -> None:
    cfg = _config()
    ds = build_frame_dataset(frames, cfg)
    epoch0 = sorted(ds.frame_index(p) for p in range(len(frames)))
    assert epoch0 == list(range(len(frames)))
    other = FrameDataset(frames, ds.crops, seed=cfg.seed, min_size=cfg.min_size)
    a, b = ds[9], other[9]  # fresh instance, same position -> same frame and crops
    assert (
        a["frame"] == b["frame"] and torch.equal(a["view1"], b["view1"]) and torch.equal(a["box2"], b["box2"])
    )
    assert not torch.equal(ds[10]["box1"], a["box1"])


def test_step_sampler_shards_each_global_batch() -> None:
    single = list(StepSampler(2, 4, batch_size=4))
    shards = [list(StepSampler(2, 4, batch_size=4, rank=r, world_size=2)) for r in range(2)]
    assert single == list(range(8, 16))
    assert shards == [[8, 9, 12, 13], [10, 11, 14, 15]]
    with pytest.raises(ValueError, match="divisible"):
        StepSampler(0, 1, batch_size=3, world_size=2)


def test_bad_frames_are_skipped_with_a_report(tmp_path: Path) -> None:
    good = _write_frames(tmp_path / "good", 2)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    small = _write_frames(tmp_path / "small", 1, size=(8, 8))[0]
    ds = FrameDataset(
        [str(corrupt), good[0], small, good[1]], build_frame_dataset(good, _config()).crops, min_size=16
    )
    seen = [ds[p] for p in range(4)]
    reports = [msg for s in seen for msg in s["skipped"]]
    assert len(reports) == 2
    assert any("corrupt.jpg" in m for m in reports) and any("min_size" in m for m in reports)
    assert {s["frame"] for s in seen} <= {1, 3}
    all_bad = FrameDataset([str(corrupt), small, str(tmp_path / "missing.png")], ds.crops, min_size=16)
    with pytest.raises(RuntimeError, match="consecutive frames could not be used"):
        all_bad[0]


# ---------------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------------


def test_tiny_run_logs_checkpoints_exports_and_skips(tmp_path: Path) -> None:
    frames = _write_frames(tmp_path / "frames", 6)
    (tmp_path / "frames" / "broken.png").write_bytes(b"not a png")
    frames.insert(2, str(tmp_path / "frames" / "broken.png"))  # not followed by another bad frame
    frames.insert(5, _write_frames(tmp_path / "tiny", 1, size=(8, 12))[0])
    cfg = _config(steps=2, batch_size=4, checkpoint_every=1, log_every=1, num_workers=2)
    logged: list[tuple[int, dict[str, float]]] = []
    work = tmp_path / "work"
    result = train_fc(frames, cfg, work_dir=work, log=lambda m, s: logged.append((s, m)))

    assert result.final_step == 2 and result.start_step == 0 and not result.stopped_early
    assert result.export_path == work / "fc.pth" and result.world_size == 1 and result.device == "cpu"
    assert result.n_skipped_images == 2  # 8 positions = one epoch: each bad frame drawn once
    assert result.last_loss is not None and -4.0 <= result.last_loss <= 4.0 and result.images_per_second > 0
    assert [s for s, _ in logged] == [1, 2]
    assert set(logged[0][1]) == {"loss", "lr", "ema_momentum", "images_per_second", "epoch", "skipped_images"}
    assert logged[0][1]["ema_momentum"] == pytest.approx(0.99) and logged[1][1]["lr"] == pytest.approx(1e-3)
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]

    state = load_train_state(work / "last.ckpt")
    assert state["step"] == 2 and state["data"]["n_frames"] == 8 and state["config"] == asdict(cfg)
    assert load_train_state(work / "last.prev.ckpt")["step"] == 1
    export = torch.load(work / "fc.pth", weights_only=True)
    assert export["format"] == "sfc_native" and export["arch"] == "resnet18" and export["step"] == 2
    assert "optimizer" not in export and "online_encoder.layer4.0.conv1.weight" in export["model"]
    backbone, info = load_backbone("resnet18", work / "fc.pth")
    assert info.layout == "sfc_native"
    assert torch.equal(
        backbone.state_dict()["layer3.1.conv2.weight"],
        export["model"]["online_encoder.layer3.1.conv2.weight"],
    )

    # Rerunning a finished run is a no-op that keeps the weights.
    again = train_fc(frames, cfg, work_dir=work)
    assert again.start_step == 2 and again.final_step == 2 and again.last_loss is None
    assert torch.equal(
        _model_state(work / "fc.pth")["predictor.linear2.weight"], export["model"]["predictor.linear2.weight"]
    )


def test_max_minutes_stops_cleanly_with_a_final_checkpoint(frames: list[str], tmp_path: Path) -> None:
    result = train_fc(frames, _config(steps=5, max_minutes=1e-6), work_dir=tmp_path)
    assert result.stopped_early and result.final_step == 1
    assert load_train_state(tmp_path / "last.ckpt")["step"] == 1
    assert torch.load(tmp_path / "fc.pth", weights_only=True)["step"] == 1


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch single-threaded, like the CHILD_ENV subprocesses (same reduction order -> same bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_DRIVER = """
import json, os, signal, sys
from sfc.training import FCTrainConfig, train_fc
frames, config, work_dir, kill_at = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def log(metrics, step):
    if step == kill_at:  # called right after the checkpoint of this step is on disk
        os.kill(os.getpid(), signal.SIGKILL)
train_fc(frames, FCTrainConfig(**config), work_dir=work_dir, log=log)
"""


def test_resume_after_sigkill_gives_bit_identical_weights(
    frames: list[str], tmp_path: Path, one_thread: None
) -> None:
    cfg = _config(steps=4, checkpoint_every=2, log_every=1, deterministic=True)
    reference = train_fc(frames, cfg, work_dir=tmp_path / "uninterrupted")
    assert reference.final_step == 4

    # The same call in a child process that SIGKILLs itself once the step-2 checkpoint is on disk.
    args = [
        sys.executable,
        "-c",
        _DRIVER,
        json.dumps(frames),
        json.dumps(asdict(cfg)),
        str(tmp_path / "run"),
        "2",
    ]
    killed = subprocess.run(args, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_train_state(tmp_path / "run" / "last.ckpt")["step"] == 2
    assert not (tmp_path / "run" / "fc.pth").exists()

    resumed = train_fc(frames, cfg, work_dir=tmp_path / "run")  # rerun: resumes automatically
    assert (resumed.start_step, resumed.final_step) == (2, 4)
    want, got = _model_state(tmp_path / "uninterrupted" / "fc.pth"), _model_state(tmp_path / "run" / "fc.pth")
    assert want.keys() == got.keys()
    different = [k for k in want if not torch.equal(want[k], got[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]


def test_corrupt_or_incompatible_checkpoint_is_a_clear_error(frames: list[str], tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ResumeError, match=r"last\.ckpt.*not a readable checkpoint.*Delete"):
        train_fc(frames, _config(steps=1), work_dir=tmp_path)
    assert (tmp_path / "last.ckpt").read_bytes() == b"PK\x03\x04 truncated"  # never replaced

    model = FineGrained("resnet18", projection_hidden_dim=16, projection_dim=8, prediction_hidden_dim=16)
    torch.save(model.export_checkpoint(step=1), tmp_path / "last.ckpt")  # an export, not a training state
    with pytest.raises(ResumeError, match="expected a training state"):
        train_fc(frames, _config(steps=1), work_dir=tmp_path)

    (tmp_path / "last.ckpt").unlink()
    train_fc(frames, _config(steps=1), work_dir=tmp_path)
    with pytest.raises(ResumeError, match=r"other settings \(lr"):
        train_fc(frames, _config(steps=2, lr=5e-4), work_dir=tmp_path)
    with pytest.raises(ResumeError, match="trained on 6 frames, now 5"):
        train_fc(frames[:5], _config(steps=2), work_dir=tmp_path)


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(
    frames: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    forward = FineGrained.forward

    def poisoned(self: FineGrained, *args: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = forward(self, *args)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(FineGrained, "forward", poisoned)
    with pytest.raises(
        TrainingDivergedError, match=r"non-finite FC loss \(nan\) at step 3 .*last\.ckpt \(step 2\)"
    ):
        train_fc(frames, _config(steps=4, checkpoint_every=2), work_dir=tmp_path)
    assert load_train_state(tmp_path / "last.ckpt")["step"] == 2
    assert not (tmp_path / "fc.pth").exists()


def test_atomic_save_never_leaves_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path, keep_previous=True)
    atomic_save({"step": 2}, path, keep_previous=True)
    assert torch.load(path)["step"] == 2 and torch.load(tmp_path / "last.prev.ckpt")["step"] == 1

    def crash(obj: object, fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"step": 3}, path, keep_previous=True)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 2 and torch.load(tmp_path / "last.prev.ckpt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.prev.ckpt"]


def test_config_validation_and_from_dict() -> None:
    assert FCTrainConfig.from_dict({"steps": 10}).steps == 10
    with pytest.raises(ValueError, match="unknown FCTrainConfig keys"):
        FCTrainConfig.from_dict({"step": 10})
    with pytest.raises(ValueError, match="scale_min"):
        FCTrainConfig(scale_min=0.8, scale_max=0.2)


# ---------------------------------------------------------------------------------------------------
# Distributed (2 CPU processes, gloo)
# ---------------------------------------------------------------------------------------------------


def _emulated_ddp(
    frames: list[str], cfg: FCTrainConfig, world_size: int
) -> tuple[list[float], dict[str, torch.Tensor]]:
    """One process doing what DDP does: per-rank shards with their own BN statistics, mean loss."""
    model, dataset = build_fc_model(cfg), build_frame_dataset(frames, cfg)
    optimizer = build_optimizer(model, cfg)
    model.train()
    losses = []
    for step in range(cfg.steps):
        model.update_target(ema_momentum(step, cfg.steps, cfg.momentum_base))
        shard_losses = []
        for rank in range(world_size):
            sampler = StepSampler(step, step + 1, cfg.batch_size, rank, world_size)
            batch = collate_crops([dataset[p] for p in sampler])
            shard_losses.append(model(batch["view1"], batch["view2"], batch["box1"], batch["box2"]))
        loss = torch.stack(shard_losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, {k: v.detach() for k, v in model.named_parameters()}


#: Biases followed (through linear layers only) by a BatchNorm: their exact gradient is zero, so Adam
#: turns float rounding noise into steps of up to lr. They do not change any output.
BN_CANCELLED = ("online_projector.linear1.bias", "online_projector.linear2.bias", "predictor.linear1.bias")


def test_two_process_ddp_matches_single_process_on_the_same_global_batch(
    frames: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """2 gloo processes x 2 frames vs one process on the same 4 frames.

    BatchNorm statistics are per process (as in the official code, which uses one GPU), so a plain
    single-process run on the 4-frame batch normalises over other samples and gives another loss. The
    reference therefore evaluates the same global batch in one process shard by shard (each shard's BN
    on its own 2 frames) and averages the shard losses, which is what DDP computes. What remains is
    float summation order (all-reduce vs autograd accumulation): losses agree to 1e-5, weights to 1e-4
    after two Adam steps (Adam's first steps amplify tiny gradient differences), except the
    BN_CANCELLED biases.
    """
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "1")
    cfg = _config(steps=2, batch_size=4, checkpoint_every=100, log_every=1)
    result = launch_fc_training(2, frames, cfg, work_dir=tmp_path, log_level=30)
    assert result is not None and result.world_size == 2 and result.final_step == 2
    assert result.replicas_identical is True  # bitwise, checked across ranks by train_fc

    losses, params = _emulated_ddp(frames, cfg, world_size=2)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx(losses, abs=1e-5)
    trained = _model_state(tmp_path / "fc.pth")
    for name, value in params.items():
        if name not in BN_CANCELLED:
            torch.testing.assert_close(trained[name], value, rtol=0, atol=1e-4, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_with_bf16_autocast_and_channels_last(frames: list[str], tmp_path: Path) -> None:
    result = train_fc(frames, _config(steps=2, batch_size=4, image_size=32, device="cuda"), work_dir=tmp_path)
    assert result.device.startswith("cuda") and result.last_loss is not None
    assert -4.0 <= result.last_loss <= 4.0
    backbone, _ = load_backbone("resnet18", tmp_path / "fc.pth")
    assert all(torch.isfinite(v).all() for v in backbone.state_dict().values() if v.is_floating_point())
