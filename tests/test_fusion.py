"""Tests of late fusion (SFC eq. 7): shapes, norms, the similarity identity, invariances, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sfc.fusion import (
    PAPER_LAMBDA_DAVIS,
    check_fusion_args,
    fused_similarity,
    late_fusion,
    official_channel_order,
    resize_to,
)


def _maps(*lead: int, cs: int = 6, cf: int = 4, h: int = 5, w: int = 7, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, cs, h, w, generator=gen) * 3, torch.randn(*lead, cf, h, w, generator=gen) * 0.2


def _cos(x: torch.Tensor) -> torch.Tensor:
    """(C, h, w) unit vectors -> (h*w, h*w) cosine similarities."""
    flat = x.flatten(1)
    return flat.T @ flat


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
@pytest.mark.parametrize("lam", [0.0, 0.5, PAPER_LAMBDA_DAVIS, 10.0])
def test_shape_and_unit_norm(lead: tuple[int, ...], lam: float) -> None:
    s, f = _maps(*lead)
    fused = late_fusion(s, f, lam)
    assert fused.shape == (*lead, 10, 5, 7)
    torch.testing.assert_close(fused.norm(dim=-3), torch.ones(*lead, 5, 7))


def test_equals_the_formula_and_the_official_code() -> None:
    s, f = _maps(4)  # (T, C, h, w)
    lam = PAPER_LAMBDA_DAVIS
    fused = late_fusion(s, f, lam)
    ours = F.normalize(torch.cat((F.normalize(s, dim=1), lam * F.normalize(f, dim=1)), dim=1), dim=1)
    torch.testing.assert_close(fused, ours, rtol=0, atol=0)
    # test_vos.py: feats = normalize(cat((fc_feats * lambd, se_feats), dim=1)) on (1, C, T, h, w) maps
    fc, se = F.normalize(f.permute(1, 0, 2, 3)[None], dim=1), F.normalize(s.permute(1, 0, 2, 3)[None], dim=1)
    official = F.normalize(torch.cat((fc * lam, se), dim=1), dim=1)[0].permute(1, 0, 2, 3)
    torch.testing.assert_close(official_channel_order(fused, semantic_channels=6), official)


@pytest.mark.parametrize("lam", [0.0, 0.3, PAPER_LAMBDA_DAVIS, 4.0])
def test_fused_similarity_identity(lam: float) -> None:
    s, f = _maps()
    sim = _cos(late_fusion(s, f, lam))
    expected = fused_similarity(_cos(F.normalize(s, dim=0)), _cos(F.normalize(f, dim=0)), lam)
    torch.testing.assert_close(sim, expected, rtol=0, atol=1e-6)
    assert sim.diagonal().allclose(torch.ones(35))


def test_lambda_zero_is_semantic_only() -> None:
    s, f = _maps()
    fused = late_fusion(s, f, 0.0)
    torch.testing.assert_close(fused[:6], F.normalize(s, dim=0))
    assert torch.count_nonzero(fused[6:]) == 0
    torch.testing.assert_close(_cos(fused), _cos(F.normalize(s, dim=0)))


def test_large_lambda_tends_to_fine_only() -> None:
    s, f = _maps()
    sim = _cos(late_fusion(s, f, 1e4))
    torch.testing.assert_close(sim, _cos(F.normalize(f, dim=0)), rtol=0, atol=1e-6)


def test_channel_order_does_not_change_similarities() -> None:
    """[Fs, lam Ff] (ours) and [lam Ff, Fs] (official) give the same affinities."""
    s, f = _maps()
    ours = late_fusion(s, f, PAPER_LAMBDA_DAVIS)
    official = official_channel_order(ours, semantic_channels=s.shape[0])
    assert not torch.equal(ours, official)
    torch.testing.assert_close(_cos(ours), _cos(official), rtol=0, atol=1e-6)
    # and fusing in the other order, with the weight moved accordingly, is the same reordering
    swapped = F.normalize(torch.cat((PAPER_LAMBDA_DAVIS * F.normalize(f, dim=0), F.normalize(s, dim=0))), dim=0)
    torch.testing.assert_close(official, swapped)


def test_inputs_need_not_be_normalised_and_scale_is_ignored() -> None:
    s, f = _maps()
    torch.testing.assert_close(late_fusion(s, f, 1.5), late_fusion(7 * s, 0.01 * f, 1.5))


def test_zero_locations_stay_finite() -> None:
    s, f = _maps()
    s[:, 0, 0] = 0
    f[:, 1, 1] = 0
    fused = late_fusion(s, f, PAPER_LAMBDA_DAVIS)
    assert torch.isfinite(fused).all()
    assert fused[:, 0, 0].norm() == pytest.approx(1.0) and fused[6:, 0, 0].norm() == pytest.approx(1.0)


def test_dtype_promotion() -> None:
    s, f = _maps()
    assert late_fusion(s.double(), f, 1.0).dtype == torch.float64


# ------------------------------------------------------------------------------------ sizes


def test_size_mismatch_is_an_error_naming_both_shapes() -> None:
    s = torch.randn(3, 384, 4, 6)  # ViT-S/16 on 64 x 96 frames
    f = torch.randn(3, 256, 8, 12)  # ResNet, stride 8
    with pytest.raises(ValueError) as err:
        late_fusion(s, f, PAPER_LAMBDA_DAVIS)
    msg = str(err.value)
    assert "(3, 384, 4, 6)" in msg and "(3, 256, 8, 12)" in msg and "align='resize'" in msg
    assert "stride" in msg


def test_resize_option_resamples_semantic_onto_the_fine_grid() -> None:
    s = torch.randn(3, 16, 4, 6)
    f = torch.randn(3, 8, 8, 12)
    fused = late_fusion(s, f, 1.0, align="resize")
    assert fused.shape == (3, 24, 8, 12)
    torch.testing.assert_close(fused.norm(dim=1), torch.ones(3, 8, 12))
    expected = late_fusion(resize_to(s, (8, 12)), f, 1.0)
    torch.testing.assert_close(fused, expected)


def test_resize_to() -> None:
    x = torch.randn(2, 5, 3, 4)
    y = resize_to(x, (6, 8))
    assert y.shape == (2, 5, 6, 8)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2, 6, 8))
    ref = F.normalize(F.interpolate(x, size=(6, 8), mode="bilinear", align_corners=False), dim=1)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(resize_to(x, (3, 4)), F.normalize(x, dim=1))  # same size: normalised only
    assert resize_to(torch.randn(5, 3, 4), (6, 8)).shape == (5, 6, 8)  # no leading dims
    const = torch.ones(1, 3, 2, 2)  # a constant field stays constant (and unit)
    torch.testing.assert_close(resize_to(const, (5, 5)), torch.full((1, 3, 5, 5), 1 / math.sqrt(3)))


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_bad_lambda(lam: float) -> None:
    s, f = _maps()
    with pytest.raises(ValueError, match="lambda"):
        late_fusion(s, f, lam)
    with pytest.raises(ValueError, match="lambda"):
        fused_similarity(torch.zeros(1), torch.zeros(1), lam)


def test_bad_align_and_maps() -> None:
    s, f = _maps()
    with pytest.raises(ValueError, match="align"):
        late_fusion(s, f, 1.0, align="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="align"):
        check_fusion_args(1.0, "crop")
    with pytest.raises(ValueError, match=r"semantic features must be \(\.\.\., C, h, w\)"):
        late_fusion(torch.randn(5, 7), f, 1.0)
    with pytest.raises(ValueError, match="floating point"):
        late_fusion(s, f.to(torch.int64), 1.0)
    with pytest.raises(ValueError, match="leading"):
        late_fusion(torch.randn(2, 6, 5, 7), torch.randn(3, 4, 5, 7), 1.0)
    with pytest.raises(ValueError, match="semantic_channels"):
        official_channel_order(late_fusion(s, f, 1.0), 11)
