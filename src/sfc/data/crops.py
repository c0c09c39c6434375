"""Coordinate-aware random crops: the two views of one frame used to train the FC network.

Each view is a random resized crop (official ``transform_coord.RandomResizedCropCoord``: torchvision's
``RandomResizedCrop.get_params`` algorithm with 10 attempts and a centre-crop fallback) resized to
``image_size`` x ``image_size`` with PIL bilinear interpolation, optionally flipped horizontally, then
converted to float and normalised. No colour augmentation (SFC A.1: "crop-only").

Crop-area scale: uniform in ``scale`` x image area (paper: [0.0, 1.0]); aspect ratio log-uniform in
``ratio`` (official default [3/4, 4/3]). An attempt is rejected unless ``0 < w <= W`` and ``0 < h <= H``
after rounding, so scale 0.0 never produces an empty crop.

Boxes: ``(x1, y1, x2, y2) = (j / (W-1), i / (H-1), (j+w-1) / (W-1), (i+h-1) / (H-1))`` for a crop of
``w x h`` pixels at column ``j``, row ``i`` of a ``W x H`` image (official convention). A flipped view
swaps ``x1`` and ``x2`` (PixPro convention), which is how :func:`sfc.losses.dense_positive.positive_mask`
maps its cells back; the flip flags are returned too for convenience.

Flip: the official SFC training applies no flip (its transform is crop + ToTensor + Normalize only), so
``flip=False`` is the paper's setting; ``flip=True`` flips each view independently with probability 0.5.

Normalisation (a quirk kept on purpose): official training normalises crops with the *CIFAR-10*
mean/std (:data:`CIFAR_MEAN`, :data:`CIFAR_STD`), while the official test loader normalises frames with
the ImageNet mean/std (:data:`sfc.models.backbones.IMAGENET_MEAN`). Both are close; we reproduce both.

Small images: images smaller than ``image_size`` are simply upsampled by the resize (as officially);
skipping frames below a minimum size is the trainer's job (``FCTrainConfig.min_size``). Images must be
at least 2 x 2 pixels, since box coordinates divide by ``W - 1`` and ``H - 1``.

Determinism: all random draws come from the ``torch.Generator`` passed to the call, so a seeded
generator gives the same crops in any process or DataLoader worker.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
"""Mean used by the official FC training transform (CIFAR-10 statistics)."""
CIFAR_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)
"""Std used by the official FC training transform (CIFAR-10 statistics)."""


class CropPair(NamedTuple):
    """Two views of one image and where they come from.

    Attributes:
        view1: (3, S, S) float32 normalised crop.
        view2: (3, S, S) float32 normalised crop.
        box1: (4,) float32 box of view 1 ``(x1, y1, x2, y2)``, x swapped when flipped.
        box2: (4,) float32 box of view 2.
        flipped1: () bool, view 1 was flipped horizontally.
        flipped2: () bool, view 2 was flipped horizontally.
    """

    view1: torch.Tensor
    view2: torch.Tensor
    box1: torch.Tensor
    box2: torch.Tensor
    flipped1: torch.Tensor
    flipped2: torch.Tensor


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    u = float(torch.rand((), dtype=torch.float64, generator=generator))
    return low + (high - low) * u


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high] (both inclusive, like ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def sample_crop(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Random-resized-crop parameters (torchvision / official ``get_params`` algorithm).

    Args:
        width: image width W.
        height: image height H.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio w / h (sampled log-uniformly).
        generator: source of randomness.

    Returns:
        ``(i, j, h, w)``: top row, left column, crop height and width in pixels.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = _uniform(scale[0], scale[1], generator) * area
        aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = _randint(0, height - h, generator)
            j = _randint(0, width - w, generator)
            return i, j, h, w
    # Fallback: the largest centred crop with an aspect ratio inside ``ratio``.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_box(
    i: int, j: int, h: int, w: int, height: int, width: int, *, flipped: bool = False
) -> torch.Tensor:
    """Normalised box of a crop (module docstring), x1/x2 swapped for a flipped view.

    Returns:
        (4,) float32 ``(x1, y1, x2, y2)``.
    """
    x1, x2 = j / (width - 1), (j + w - 1) / (width - 1)
    y1, y2 = i / (height - 1), (i + h - 1) / (height - 1)
    if flipped:
        x1, x2 = x2, x1
    return torch.tensor([x1, y1, x2, y2], dtype=torch.float32)


class TwoCropsWithCoords:
    """Two independent coordinate-aware random resized crops of one image (SFC A.1).

    Example:
        >>> crops = TwoCropsWithCoords(image_size=256)
        >>> pair = crops(pil_image, torch.Generator().manual_seed(0))
        >>> pair.view1.shape, pair.box1
        (torch.Size([3, 256, 256]), tensor([x1, y1, x2, y2]))
    """

    def __init__(
        self,
        image_size: int = 256,
        *,
        scale: tuple[float, float] = (0.0, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = False,
        mean: tuple[float, float, float] = CIFAR_MEAN,
        std: tuple[float, float, float] = CIFAR_STD,
    ) -> None:
        """Configure the crops.

        Args:
            image_size: side S of the square output crops (paper: 256 -> 32 x 32 features).
            scale: crop-area fraction range (paper: (0.0, 1.0)).
            ratio: aspect-ratio range (official default (3/4, 4/3)).
            flip: flip each view with probability 0.5 (official: no flip).
            mean: normalisation mean (official training: CIFAR).
            std: normalisation std (official training: CIFAR).
        """
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if not 0.0 <= scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 <= min <= max <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.image_size = image_size
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip = flip
        self.mean = list(mean)
        self.std = list(std)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, scale={self.scale}, ratio={self.ratio}, "
            f"flip={self.flip})"
        )

    def view(
        self, img: Image.Image, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """One view: ((3, S, S) normalised crop, (4,) box, flipped)."""
        width, height = img.size
        i, j, h, w = sample_crop(width, height, self.scale, self.ratio, generator)
        out = TF.resized_crop(
            img, i, j, h, w, [self.image_size, self.image_size], InterpolationMode.BILINEAR, antialias=True
        )
        flipped = self.flip and float(torch.rand((), generator=generator)) < 0.5
        if flipped:
            out = TF.hflip(out)
        x = TF.normalize(TF.to_tensor(out), self.mean, self.std)
        return x, crop_box(i, j, h, w, height, width, flipped=flipped), flipped

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> CropPair:
        """Crop ``img`` twice.

        Args:
            img: PIL image of at least 2 x 2 pixels (converted to RGB if needed).
            generator: source of randomness (None: the global torch RNG).

        Returns:
            :class:`CropPair` of two (3, S, S) views, their boxes and flip flags.

        Raises:
            ValueError: the image is smaller than 2 x 2 pixels.
        """
        width, height = img.size
        if width < 2 or height < 2:
            raise ValueError(f"image of {width}x{height} pixels is too small to crop (need at least 2x2)")
        if img.mode != "RGB":
            img = img.convert("RGB")
        v1, b1, f1 = self.view(img, generator)
        v2, b2, f2 = self.view(img, generator)
        return CropPair(v1, v2, b1, b2, torch.tensor(f1), torch.tensor(f2))
