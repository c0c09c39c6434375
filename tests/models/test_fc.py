"""Tests of the FC network: official structure and key names, symmetric loss, EMA target."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sfc.models import ConvMLP2d, FineGrained, load_backbone, update_momentum

SMALL = {"projection_hidden_dim": 32, "projection_dim": 16, "prediction_hidden_dim": 32}


@pytest.fixture(scope="module")
def model() -> FineGrained:
    return FineGrained("resnet18", **SMALL, seed=0)


def test_state_dict_uses_the_official_prefixes_and_head_layout() -> None:
    full = FineGrained("resnet18", seed=0)
    keys = full.state_dict().keys()
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {
        "online_encoder",
        "target_encoder",
        "online_projector",
        "target_projector",
        "predictor",
    }
    assert "online_encoder.layer4.1.bn2.weight" in keys  # layer4 is trained
    # Official MLP2d: linear1 (1x1 conv, bias) -> bn1 -> relu -> linear2 (1x1 conv, bias).
    shapes = {
        k: tuple(v.shape)
        for k, v in full.state_dict().items()
        if k.startswith(("online_projector", "predictor"))
    }
    assert shapes["online_projector.linear1.weight"] == (2048, 512, 1, 1)
    assert shapes["online_projector.linear1.bias"] == (2048,)
    assert shapes["online_projector.bn1.running_var"] == (2048,)
    assert shapes["online_projector.linear2.weight"] == (256, 2048, 1, 1)
    assert shapes["predictor.linear1.weight"] == (2048, 256, 1, 1)
    assert shapes["predictor.linear2.weight"] == (256, 2048, 1, 1)


def test_init_is_seeded_and_target_equals_online(model: FineGrained) -> None:
    again = FineGrained("resnet18", **SMALL, seed=0)
    other = FineGrained("resnet18", **SMALL, seed=1)
    state, state2 = model.state_dict(), again.state_dict()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert not torch.equal(state["predictor.linear1.weight"], other.state_dict()["predictor.linear1.weight"])
    for t, o in zip(
        model.target_parameters(),
        [*model.online_encoder.parameters(), *model.online_projector.parameters()],
        strict=True,
    ):
        assert torch.equal(t, o) and not t.requires_grad


def test_encoder_output_is_stride_8_with_layer4(model: FineGrained) -> None:
    with torch.no_grad():
        assert model.online_encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 8, 8)
    head = ConvMLP2d(512, 32, 16)
    assert head(torch.zeros(2, 512, 3, 3)).shape == (2, 16, 3, 3)


def test_forward_loss_is_symmetric_in_range_and_trains_only_online(model: FineGrained) -> None:
    gen = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(2, 3, 32, 32, generator=gen), torch.randn(2, 3, 32, 32, generator=gen)
    b1 = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.7, 0.8]])
    b2 = torch.tensor([[0.2, 0.1, 0.9, 0.8], [0.6, 0.2, 0.0, 0.9]])  # second view of sample 1 flipped
    model.train()
    model.zero_grad()
    loss = model(v1, v2, b1, b2)
    assert loss.ndim == 0 and -4.0 <= float(loss.detach()) <= 4.0
    loss.backward()
    assert all(p.grad is None for p in model.target_parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    with torch.no_grad():
        swapped = model(v2, v1, b2, b1)
    assert float(swapped) == pytest.approx(float(loss.detach()), abs=1e-5)


def test_update_target_follows_the_ema_formula() -> None:
    net = FineGrained("resnet18", **SMALL, seed=0)
    with torch.no_grad():
        for p in net.online_parameters():
            p.add_(1.0)
    before = [t.clone() for t in net.target_parameters()]
    online = [*net.online_encoder.parameters(), *net.online_projector.parameters()]
    net.update_target(0.9)
    for t, t0, o in zip(net.target_parameters(), before, online, strict=True):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * o, atol=1e-6)
    snapshot = [t.clone() for t in net.target_parameters()]
    net.update_target(1.0)  # momentum 1 freezes the target
    assert all(torch.equal(a, b) for a, b in zip(snapshot, net.target_parameters(), strict=True))
    with pytest.raises(ValueError, match="momentum"):
        update_momentum(net.target_parameters(), online, 1.5)


def test_export_is_loadable_by_load_backbone(model: FineGrained, tmp_path: Path) -> None:
    path = tmp_path / "fc.pth"
    ckpt = model.export_checkpoint(step=7, config={"seed": 0})
    assert ckpt["format"] == "sfc_native" and ckpt["step"] == 7
    torch.save(ckpt, path)
    backbone, info = load_backbone("resnet18", path)
    assert info.layout == "sfc_native"
    src = model.online_encoder.state_dict()
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, src[k]), k
