"""The fine-grained correspondence (FC) network of SFC: a BYOL/PixPro-style dense self-distillation model.

Structure (official ``models/fine_grained.py``; attribute names = official state-dict prefixes):

* ``online_encoder``: stride-8 ResNet whose ``layer3`` *and* ``layer4`` have stride 1
  (:func:`~sfc.models.backbones.build_backbone` with ``keep_layer4=True``): (B, 3, 256, 256) ->
  (B, 512, 32, 32) for ResNet-18. Test time uses layer3's output only (layer4 is dropped by
  :func:`~sfc.models.checkpoints.load_backbone`).
* ``online_projector``: :class:`ConvMLP2d` 512 -> 2048 -> 256 (1x1 conv with bias, BN, ReLU, 1x1 conv with
  bias; keys ``linear1``, ``bn1``, ``linear2``).
* ``predictor``: :class:`ConvMLP2d` 256 -> 2048 -> 256.
* ``target_encoder`` / ``target_projector``: copies of the online ones without gradients, updated by an
  exponential moving average of the *parameters* (buffers such as BN running statistics are not
  averaged, as officially) with :meth:`FineGrained.update_target`.

Loss (SFC A.1): ``L = l(pred(view1), target(view2)) + l(pred(view2), target(view1))`` with ``l`` the dense
positive-radius loss of :mod:`sfc.losses.dense_positive`; range [-4, 4], about -4 at perfect alignment.

Differences from the official module, all behaviour-neutral: the official ``forward`` advances its own
step counter and applies the EMA update itself before the target pass; here the trainer calls
``update_target(ema_momentum(step, total))`` right before ``forward`` (same order, schedule in
:mod:`sfc.training.schedules`), which keeps ``forward`` pure and the step count in the checkpoint. Inputs
are (B, 3, H, W) frames rather than (B, T, 3, H, W) clips (the official default clip length is 1).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sfc.losses.dense_positive import dense_positive_loss, positive_mask
from sfc.models.backbones import LAYER4_DIMS, ResNetBackbone, build_backbone
from sfc.models.checkpoints import make_native_checkpoint


class ConvMLP2d(nn.Module):
    """Two-layer MLP applied at every position with 1x1 convolutions (official ``MLP2d``).

    ``linear1`` (1x1 conv + bias) -> ``bn1`` (BatchNorm2d) -> ``relu1`` -> ``linear2`` (1x1 conv + bias).
    Used for both the projector and the predictor; convs keep PyTorch's default init, as officially.

    Input: (B, in_dim, h, w). Output: (B, out_dim, h, w).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 256) -> None:
        """Build the head.

        Args:
            in_dim: input channels.
            hidden_dim: hidden channels (paper: 2048).
            out_dim: output channels (paper: 256).
        """
        super().__init__()
        self.linear1 = nn.Conv2d(in_dim, hidden_dim, kernel_size=1, bias=True)
        self.bn1 = nn.BatchNorm2d(hidden_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv2d(hidden_dim, out_dim, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu1(self.bn1(self.linear1(x))))


@torch.no_grad()
def update_momentum(target: Iterable[nn.Parameter], online: Iterable[nn.Parameter], momentum: float) -> None:
    """EMA update ``t <- m * t + (1 - m) * o`` for matching parameter lists (official formula).

    Args:
        target: parameters updated in place.
        online: source parameters, same order and shapes.
        momentum: ``m`` in [0, 1]; 1 leaves the target unchanged.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    targets, onlines = list(target), list(online)
    if len(targets) != len(onlines):
        raise ValueError(f"target has {len(targets)} parameters, online {len(onlines)}")
    for t, o in zip(targets, onlines, strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)


class FineGrained(nn.Module):
    """The FC network (official ``FineGrained``): online encoder/projector/predictor and an EMA target.

    Attributes:
        arch: backbone architecture.
        radius: positive radius of the loss (units of the larger bin diagonal).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        *,
        projection_hidden_dim: int = 2048,
        projection_dim: int = 256,
        prediction_hidden_dim: int = 2048,
        radius: float = 0.5,
        seed: int | None = 0,
    ) -> None:
        """Build the network with a seeded random init.

        Args:
            arch: ``"resnet18"`` (paper) or ``"resnet50"``.
            projection_hidden_dim: projector hidden channels (paper: 2048).
            projection_dim: projector / predictor output channels (paper: 256).
            prediction_hidden_dim: predictor hidden channels (paper: 2048).
            radius: positive radius (paper: 0.5).
            seed: seed of the whole init (backbone and heads) from a private RNG stream, so the global
                RNG is untouched; None draws from the global RNG.
        """
        super().__init__()
        self.arch = arch
        self.radius = radius
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.online_encoder: ResNetBackbone = build_backbone(arch, seed=None, keep_layer4=True)
            in_dim = LAYER4_DIMS[arch]
            self.online_projector = ConvMLP2d(in_dim, projection_hidden_dim, projection_dim)
            self.predictor = ConvMLP2d(projection_dim, prediction_hidden_dim, projection_dim)
        # The target starts as an exact copy of the online network and never receives gradients.
        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_projector = copy.deepcopy(self.online_projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def online_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters: online encoder, online projector, predictor (give these to the optimizer)."""
        return [
            *self.online_encoder.parameters(),
            *self.online_projector.parameters(),
            *self.predictor.parameters(),
        ]

    def target_parameters(self) -> list[nn.Parameter]:
        """EMA parameters: target encoder then target projector."""
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA update of the target encoder and projector from the online ones (parameters only).

        Args:
            momentum: current EMA momentum (:func:`sfc.training.schedules.ema_momentum`).
        """
        update_momentum(self.target_encoder.parameters(), self.online_encoder.parameters(), momentum)
        update_momentum(self.target_projector.parameters(), self.online_projector.parameters(), momentum)

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.online_projector(self.online_encoder(x)))

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(x))

    def forward(
        self, view1: torch.Tensor, view2: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor
    ) -> torch.Tensor:
        """Symmetrised dense positive-radius loss of two views (SFC A.1).

        Input: view1, view2: (B, 3, H, W) crops of the same frames (CIFAR-normalised, see
        :mod:`sfc.data.crops`); boxes1, boxes2: (B, 4) their crop boxes in normalised image coordinates
        (flipped views have x1 > x2). Output: scalar float32 loss in [-4, 4].
        """
        pred1 = self._online(view1)  # (B, 256, h, w)
        pred2 = self._online(view2)
        with torch.no_grad():
            targ1 = self._target(view1)
            targ2 = self._target(view2)
        h, w = pred1.shape[-2:]
        mask12 = positive_mask(boxes1, boxes2, (h, w), self.radius)
        # The relation is symmetric, so view 2 -> view 1 uses the transpose.
        return dense_positive_loss(pred1, targ2, mask12) + dense_positive_loss(
            pred2, targ1, mask12.transpose(1, 2)
        )

    def export_checkpoint(self, *, step: int | None = None, **metadata: Any) -> dict[str, Any]:
        """The ``sfc_native`` checkpoint dict of this model (CPU tensors, official key names).

        Args:
            step: training step stored with the weights.
            **metadata: further entries (e.g. ``config``), see
                :func:`~sfc.models.checkpoints.make_native_checkpoint`.

        Returns:
            ``{'format': 'sfc_native', 'arch', 'step', **metadata, 'model': {'online_encoder.*', ...}}``,
            loadable by :func:`~sfc.models.checkpoints.load_backbone` and by the official
            ``models/encoder.py`` (``['model']`` with ``online_encoder.`` keys).
        """
        state = {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for k, v in self.state_dict().items()
        }
        return make_native_checkpoint(state, arch=self.arch, step=step, **metadata)
