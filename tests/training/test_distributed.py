"""Tests of :mod:`sfc.training.distributed`: 2 CPU processes (gloo) through :func:`launch_fc_training`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sfc.training import (
    EXPORT_NAME,
    FCTrainConfig,
    StepSampler,
    build_fc_model,
    build_frame_dataset,
    build_optimizer,
    collate_crops,
    ema_momentum,
    launch_fc_training,
    load_train_state,
)
from tests.training.helpers import assert_same_weights, fc_config


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
    cfg = fc_config(tmp_path, steps=2, batch_size=4, checkpoint_every=100, log_every=1, nproc_per_node=2)
    result = launch_fc_training(frames, cfg, log_level=30)
    assert result is not None and result.world_size == 2 and result.final_step == 2
    assert result.replicas_identical is True  # bitwise, checked across ranks by train_fc

    # rank 0's export travels back through the launcher (not through a file)
    export = result.export
    assert export is not None and export["step"] == 2 and export["config"] == cfg.training_options()
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in export["model"].values())
    assert not (tmp_path / EXPORT_NAME).exists()
    assert_same_weights(load_train_state(tmp_path / "last.ckpt")["model"], export["model"])

    losses, params = _emulated_ddp(frames, cfg, world_size=2)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx(losses, abs=1e-5)
    for name, value in params.items():
        if name not in BN_CANCELLED:
            torch.testing.assert_close(export["model"][name], value, rtol=0, atol=1e-4, msg=name)


def test_launcher_argument_errors(frames: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nnodes >= 1"):
        launch_fc_training(frames, fc_config(tmp_path), nnodes=0)
    with pytest.raises(ValueError, match="run_id must be given"):
        launch_fc_training(frames, fc_config(tmp_path), nnodes=2)
