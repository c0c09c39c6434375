"""Tests of :func:`sfc.training.train_fc`: tiny CPU runs, resume state and export, SIGKILL resume, errors.

Every run uses 16 x 16 crops (a 2 x 2 feature map), batches of 2-4 frames, narrow heads and a few
steps, so the ResNet-18 forward stays cheap; each checkpoint still holds the full ResNet-18 (~180 MB).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sfc.models import FineGrained, load_backbone
from sfc.training import EXPORT_NAME, ResumeError, TrainingDivergedError, load_train_state, train_fc
from tests.training.helpers import (
    CHILD_ENV,
    assert_same_weights,
    fc_config,
    fc_params,
    model_state,
    write_frames,
)


def test_tiny_run_logs_checkpoints_returns_the_export_and_skips(tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "frames", 6)
    (tmp_path / "frames" / "broken.png").write_bytes(b"not a png")
    frames.insert(2, str(tmp_path / "frames" / "broken.png"))  # not followed by another bad frame
    frames.insert(5, write_frames(tmp_path / "tiny", 1, size=(8, 12))[0])
    work = tmp_path / "work"
    cfg = fc_config(work, steps=2, batch_size=4, checkpoint_every=1, log_every=1, num_workers=2)
    logged: list[tuple[int, dict[str, float]]] = []
    result = train_fc(frames, cfg, log=lambda m, s: logged.append((s, m)))

    assert result.final_step == 2 and result.start_step == 0 and not result.stopped_early
    assert result.checkpoint_path == work / "last.ckpt" and result.world_size == 1 and result.device == "cpu"
    assert result.replicas_identical is None
    assert result.n_skipped_images == 2  # 8 positions = one epoch: each bad frame drawn once
    assert result.last_loss is not None and -4.0 <= result.last_loss <= 4.0 and result.images_per_second > 0
    assert [s for s, _ in logged] == [1, 2]
    assert set(logged[0][1]) == {"loss", "lr", "ema_momentum", "images_per_second", "epoch", "skipped_images"}
    assert logged[0][1]["ema_momentum"] == pytest.approx(0.99) and logged[1][1]["lr"] == pytest.approx(1e-3)
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]

    # the trainer writes its resume state only: the export is returned, fc.pth is the caller's to write
    assert sorted(p.name for p in work.iterdir()) == ["last.ckpt", "last.prev.ckpt", "metrics.jsonl"]
    state = load_train_state(work / "last.ckpt")
    assert state["step"] == 2 and state["data"]["n_frames"] == 8 and state["config"] == cfg.training_options()
    assert load_train_state(work / "last.prev.ckpt")["step"] == 1
    export = result.export
    assert export is not None and export["kind"] == "fc_export" and export["config"] == cfg.training_options()
    assert export["format"] == "sfc_native" and export["arch"] == "resnet18" and export["step"] == 2
    assert "optimizer" not in export and "online_encoder.layer4.0.conv1.weight" in export["model"]
    assert all(v.device.type == "cpu" for v in export["model"].values())
    assert_same_weights(state["model"], export["model"])  # the export holds the last checkpoint's weights
    torch.save(export, tmp_path / EXPORT_NAME)  # what the catalog does: loadable as a backbone
    backbone, info = load_backbone("resnet18", tmp_path / EXPORT_NAME)
    assert info.layout == "sfc_native"
    assert torch.equal(
        backbone.state_dict()["layer3.1.conv2.weight"], export["model"]["online_encoder.layer3.1.conv2.weight"]
    )

    # Rerunning a finished run is a no-op that returns the same weights.
    again = train_fc(frames, cfg)
    assert again.start_step == 2 and again.final_step == 2 and again.last_loss is None
    assert again.export is not None and again.export["step"] == 2
    assert_same_weights(export["model"], again.export["model"])
    assert not (work / EXPORT_NAME).exists()


def test_max_minutes_stops_cleanly_with_a_final_checkpoint(frames: list[str], tmp_path: Path) -> None:
    result = train_fc(frames, fc_config(tmp_path, steps=5, max_minutes=1e-6))
    assert result.stopped_early and result.final_step == 1
    assert load_train_state(tmp_path / "last.ckpt")["step"] == 1
    assert result.export is not None and result.export["step"] == 1
    assert not (tmp_path / EXPORT_NAME).exists()


_DRIVER = """
import json, os, signal, sys
from sfc.training import FCTrainConfig, train_fc
frames, params, kill_at = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
def log(metrics, step):
    if step == kill_at:  # called right after the checkpoint of this step is on disk
        os.kill(os.getpid(), signal.SIGKILL)
train_fc(frames, FCTrainConfig.from_dict(params), log=log)
"""


def test_resume_after_sigkill_gives_bit_identical_weights(
    frames: list[str], tmp_path: Path, one_thread: None
) -> None:
    overrides = {"steps": 4, "checkpoint_every": 2, "log_every": 1, "deterministic": True}
    reference = train_fc(frames, fc_config(tmp_path / "uninterrupted", **overrides))
    assert reference.final_step == 4 and reference.export is not None

    # The same call in a child process that SIGKILLs itself once the step-2 checkpoint is on disk.
    run = tmp_path / "run"
    params = fc_params(run, **overrides)
    args = [sys.executable, "-c", _DRIVER, json.dumps(frames), json.dumps(params), "2"]
    killed = subprocess.run(args, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_train_state(run / "last.ckpt")["step"] == 2

    resumed = train_fc(frames, fc_config(run, **overrides))  # rerun: resumes automatically
    assert (resumed.start_step, resumed.final_step) == (2, 4) and resumed.export is not None
    assert_same_weights(reference.export["model"], resumed.export["model"])
    assert_same_weights(model_state(tmp_path / "uninterrupted" / "last.ckpt"), model_state(run / "last.ckpt"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert not (run / EXPORT_NAME).exists() and not (tmp_path / "uninterrupted" / EXPORT_NAME).exists()


def test_corrupt_or_incompatible_checkpoint_is_a_clear_error(frames: list[str], tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ResumeError, match=r"last\.ckpt.*not a readable checkpoint.*Delete"):
        train_fc(frames, fc_config(tmp_path, steps=1))
    assert (tmp_path / "last.ckpt").read_bytes() == b"PK\x03\x04 truncated"  # never replaced

    model = FineGrained("resnet18", projection_hidden_dim=16, projection_dim=8, prediction_hidden_dim=16)
    torch.save(model.export_checkpoint(step=1), tmp_path / "last.ckpt")  # an export, not a training state
    with pytest.raises(ResumeError, match="expected a training state"):
        train_fc(frames, fc_config(tmp_path, steps=1))

    (tmp_path / "last.ckpt").unlink()
    train_fc(frames, fc_config(tmp_path, steps=1))
    with pytest.raises(ResumeError, match=r"other settings \(lr"):
        train_fc(frames, fc_config(tmp_path, steps=2, lr=5e-4))
    with pytest.raises(ResumeError, match="trained on 6 frames, now 5"):
        train_fc(frames[:5], fc_config(tmp_path, steps=2))


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
        train_fc(frames, fc_config(tmp_path, steps=4, checkpoint_every=2))
    assert load_train_state(tmp_path / "last.ckpt")["step"] == 2
    assert not (tmp_path / EXPORT_NAME).exists()


def test_empty_frame_list_and_cpu_sync_bn_are_errors(tmp_path: Path, frames: list[str]) -> None:
    with pytest.raises(ValueError, match="at least one frame path"):
        train_fc([], fc_config(tmp_path))
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA and several processes"):
        train_fc(frames, fc_config(tmp_path, steps=1, sync_bn=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_with_bf16_autocast_and_channels_last(frames: list[str], tmp_path: Path) -> None:
    result = train_fc(frames, fc_config(tmp_path, steps=2, batch_size=4, image_size=32, device="cuda"))
    assert result.device.startswith("cuda") and result.last_loss is not None
    assert -4.0 <= result.last_loss <= 4.0
    assert result.export is not None
    assert all(v.device.type == "cpu" for v in result.export["model"].values())
    torch.save(result.export, tmp_path / EXPORT_NAME)
    backbone, _ = load_backbone("resnet18", tmp_path / EXPORT_NAME)
    assert all(torch.isfinite(v).all() for v in backbone.state_dict().values() if v.is_floating_point())
