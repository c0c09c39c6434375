"""Tests of :mod:`sfc.propagation.labels`: bilinear label resampling with half-pixel centres.

The official code resizes with OpenCV ``INTER_LINEAR`` (no antialiasing). Output pixel ``i`` of a
resize from ``n`` to ``n'`` samples the input at ``x = (i + 0.5) * n / n' - 0.5`` (clamped to
``[0, n - 1]``) and interpolates linearly between ``floor(x)`` and ``floor(x) + 1``. The values
below are worked out by hand from that formula.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sfc.propagation.labels import downsample_labels, upsample_argmax


@pytest.mark.parametrize(
    ("H", "W", "K", "h", "w"),
    [(64, 96, 3, 8, 12), (480, 854, 5, 60, 107), (17, 23, 1, 5, 4), (10, 10, 2, 10, 10), (7, 9, 4, 14, 18)],
)
def test_downsample_shape_dtype_and_partition_of_unity(H: int, W: int, K: int, h: int, w: int) -> None:
    gen = torch.Generator().manual_seed(0)
    onehot = F.one_hot(torch.randint(0, K, (H, W), generator=gen), K).to(torch.uint8)
    soft = downsample_labels(onehot, (h, w))
    assert soft.shape == (h, w, K) and soft.dtype == torch.float32 and soft.is_contiguous()
    # Bilinear weights sum to one: a one-hot map stays a distribution over the K labels.
    torch.testing.assert_close(soft.sum(-1), torch.ones(h, w), atol=1e-6, rtol=0)
    assert bool((soft >= 0).all() & (soft <= 1).all())


@pytest.mark.parametrize(
    ("h", "w", "K", "H", "W"), [(8, 12, 3, 64, 96), (60, 107, 5, 480, 854), (5, 4, 1, 17, 23)]
)
def test_upsample_argmax_shape_and_dtype(h: int, w: int, K: int, H: int, W: int) -> None:
    soft = torch.rand(h, w, K, generator=torch.Generator().manual_seed(1))
    out = upsample_argmax(soft, (H, W))
    assert out.shape == (H, W) and out.dtype == torch.int64
    assert int(out.min()) >= 0 and int(out.max()) < K


def test_downsample_factor_8_samples_pixels_3_4_and_11_12() -> None:
    # 16 -> 2: x = (i + 0.5) * 8 - 0.5 = 3.5 and 11.5, i.e. the mean of pixels (3, 4) and (11, 12)
    # along each axis; no other pixel contributes (no antialiasing).
    x = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(2))
    out = downsample_labels(x, (2, 2))
    for i, a in enumerate((3, 11)):
        for j, b in enumerate((3, 11)):
            expected = x[a : a + 2, b : b + 2].mean(dim=(0, 1))
            torch.testing.assert_close(out[i, j], expected, atol=1e-6, rtol=0)
    garbage = x.clone()
    keep = torch.zeros(16, dtype=torch.bool)
    keep[[3, 4, 11, 12]] = True
    garbage[~keep] = 1e3  # rows outside the sampled ones
    garbage[:, ~keep] = 1e3
    torch.testing.assert_close(downsample_labels(garbage, (2, 2)), out, atol=1e-6, rtol=0)


def test_downsample_non_integer_factor_by_hand() -> None:
    # 4 -> 3 along the width: x = (i + 0.5) * 4/3 - 0.5 = 1/6, 3/2, 17/6.
    a = torch.tensor([1.0, 2.0, 4.0, 8.0])
    out = downsample_labels(a.view(1, 4, 1), (1, 3))[0, :, 0]
    expected = torch.tensor([a[0] * 5 / 6 + a[1] / 6, (a[1] + a[2]) / 2, a[2] / 6 + a[3] * 5 / 6])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # Factor 2 along the height: x = 0.5, 2.5: pairwise means.
    col = downsample_labels(a.view(4, 1, 1), (2, 1))[:, 0, 0]
    torch.testing.assert_close(col, torch.tensor([1.5, 6.0]), atol=1e-6, rtol=0)


def test_upsample_clamps_at_borders_by_hand() -> None:
    # 2 -> 4: x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last pixel).
    soft = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, K=2): channel 0 left, channel 1 right
    interp = F.interpolate(soft.permute(2, 0, 1)[None], size=(1, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(interp[0, 0, 0], torch.tensor([1.0, 0.75, 0.25, 0.0]), atol=1e-6, rtol=0)
    assert upsample_argmax(soft, (1, 4)).tolist() == [[0, 0, 1, 1]]


@pytest.mark.parametrize(("h", "w", "K"), [(6, 7, 2), (13, 5, 5), (1, 1, 3), (32, 32, 8)])
def test_upsample_argmax_of_onehot_at_same_size_is_identity(h: int, w: int, K: int) -> None:
    labels = torch.randint(0, K, (h, w), generator=torch.Generator().manual_seed(h * w))
    assert torch.equal(upsample_argmax(F.one_hot(labels, K).float(), (h, w)), labels)


def test_argmax_ties_resolve_to_lowest_channel() -> None:
    equal = torch.full((3, 4, 5), 0.2)
    assert bool((upsample_argmax(equal, (6, 8)) == 0).all())
    partial = torch.tensor([0.2, 0.4, 0.4]).expand(3, 4, 3)
    assert bool((upsample_argmax(partial, (6, 8)) == 1).all())
    late = torch.tensor([0.1, 0.2, 0.35, 0.35]).expand(2, 2, 4)
    assert bool((upsample_argmax(late, (5, 3)) == 2).all())


def test_roundtrip_recovers_large_regions() -> None:
    # Down to the feature grid and back: large regions keep their label away from boundaries.
    labels = torch.zeros(64, 96, dtype=torch.long)
    labels[8:40, 16:56] = 1
    labels[40:, 60:] = 2
    back = upsample_argmax(downsample_labels(F.one_hot(labels, 3).float(), (8, 12)), (64, 96))
    assert (back == labels).float().mean().item() > 0.95
    assert int(back[24, 36]) == 1 and int(back[56, 80]) == 2 and int(back[2, 2]) == 0


@pytest.mark.parametrize("K", [1, 2, 5, 9])
def test_argmax_channels_equals_torch_argmax_including_ties(K: int) -> None:
    from sfc.propagation.labels import argmax_channels

    gen = torch.Generator().manual_seed(K)
    y = torch.rand(K, 37, 53, generator=gen)
    y[:, :10] = 0.25  # every channel tied: the first wins
    y[: K // 2 + 1, 20:25] = 2.0  # ties between the first channels
    assert torch.equal(argmax_channels(y), y.argmax(dim=0))
