"""Tests of the coordinate-aware two-view crops used by FC training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sfc.data.crops import CIFAR_MEAN, CIFAR_STD, TwoCropsWithCoords, crop_box, sample_crop


def _gradient_image(width: int, height: int) -> Image.Image:
    """R = column, G = row (both scaled to 0..255), B = 0: pixel values encode their position."""
    xs = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    ys = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([xs, ys, np.zeros_like(xs)], -1).round().astype(np.uint8))


@pytest.mark.parametrize("size", [(64, 48), (40, 90), (7, 5)])
@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.5), (1.0, 1.0)])
def test_sample_crop_stays_inside_the_image(size: tuple[int, int], scale: tuple[float, float]) -> None:
    gen = torch.Generator().manual_seed(0)
    width, height = size
    for _ in range(50):
        i, j, h, w = sample_crop(width, height, scale, (3 / 4, 4 / 3), gen)
        assert 0 < h <= height and 0 < w <= width
        assert 0 <= i <= height - h and 0 <= j <= width - w


def test_crop_box_convention_and_flip() -> None:
    box = crop_box(i=10, j=20, h=30, w=41, height=101, width=201)
    assert torch.allclose(box, torch.tensor([20 / 200, 10 / 100, 60 / 200, 39 / 100]))
    flipped = crop_box(i=10, j=20, h=30, w=41, height=101, width=201, flipped=True)
    assert torch.equal(flipped, box[[2, 1, 0, 3]])


def test_views_shape_normalisation_and_boxes() -> None:
    crops = TwoCropsWithCoords(image_size=32)
    pair = crops(_gradient_image(80, 60), torch.Generator().manual_seed(1))
    for view, box, flipped in (
        (pair.view1, pair.box1, pair.flipped1),
        (pair.view2, pair.box2, pair.flipped2),
    ):
        assert view.shape == (3, 32, 32) and view.dtype == torch.float32
        assert box.shape == (4,) and bool(((box >= 0) & (box <= 1)).all())
        assert not bool(flipped) and box[0] <= box[2] and box[1] <= box[3]
    # CIFAR normalisation of a constant image gives (v - mean) / std exactly.
    gray = Image.new("RGB", (50, 50), (128, 128, 128))
    out = TwoCropsWithCoords(image_size=16)(gray, torch.Generator().manual_seed(0)).view1
    expected = (torch.tensor([128 / 255] * 3) - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)
    assert torch.allclose(out.mean(dim=(1, 2)), expected, atol=1e-5)


def test_crop_content_matches_its_box() -> None:
    """Decode the crop's position from the gradient image and compare it with its box."""
    img = _gradient_image(200, 100)
    crops = TwoCropsWithCoords(image_size=24, scale=(0.2, 0.6), flip=True)
    mean, std = torch.tensor(CIFAR_MEAN).view(3, 1, 1), torch.tensor(CIFAR_STD).view(3, 1, 1)
    gen = torch.Generator().manual_seed(5)
    n_flipped = 0
    for _ in range(10):
        pair = crops(img, gen)
        rgb = pair.view1 * std + mean  # back to [0, 1]
        x_left, x_right = float(rgb[0, :, 0].mean()), float(rgb[0, :, -1].mean())
        y_top, y_bottom = float(rgb[1, 0, :].mean()), float(rgb[1, -1, :].mean())
        x1, y1, x2, y2 = pair.box1.tolist()
        # R encodes x / (W - 1) and G encodes y / (H - 1): the box corners, up to half a pixel of blur.
        assert x_left == pytest.approx(x1, abs=0.05) and x_right == pytest.approx(x2, abs=0.05)
        assert y_top == pytest.approx(y1, abs=0.05) and y_bottom == pytest.approx(y2, abs=0.05)
        assert bool(pair.flipped1) == (x1 > x2)
        n_flipped += int(pair.flipped1)
    assert 0 < n_flipped < 10


def test_same_generator_seed_gives_same_crops() -> None:
    crops, img = TwoCropsWithCoords(image_size=16, flip=True), _gradient_image(50, 40)
    a = crops(img, torch.Generator().manual_seed(7))
    b = crops(img, torch.Generator().manual_seed(7))
    c = crops(img, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a.box1, c.box1)


def test_small_images_are_upsampled_and_tiny_ones_rejected() -> None:
    crops = TwoCropsWithCoords(image_size=32)
    pair = crops(_gradient_image(8, 6), torch.Generator().manual_seed(0))
    assert pair.view1.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="too small"):
        crops(Image.new("RGB", (1, 5)), torch.Generator().manual_seed(0))


def test_grayscale_input_is_converted_to_rgb() -> None:
    pair = TwoCropsWithCoords(image_size=8)(Image.new("L", (20, 20), 100), torch.Generator().manual_seed(0))
    assert pair.view1.shape == (3, 8, 8)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="scale"):
        TwoCropsWithCoords(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="ratio"):
        TwoCropsWithCoords(ratio=(0.0, 1.0))
