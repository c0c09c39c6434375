"""Helpers of the training tests: configs built from ``conf/base`` (the trainer has no defaults) and frames.

:func:`base_params` is the ``fc_pretrain`` group of ``conf/base/parameters_fc_pretrain.yml``, the only
place its values live; :func:`fc_params` / :func:`fc_config` apply the tiny CPU overrides of
:data:`TINY` (16 px crops -> a 2 x 2 feature map, batches of 2, narrow heads) and the test's own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

from sfc.training import FCTrainConfig

REPO = Path(__file__).resolve().parents[2]
PARAMETERS_FILE = REPO / "conf" / "base" / "parameters_fc_pretrain.yml"

#: Overrides of the tiny CPU runs of tests/training (everything else: conf/base).
TINY: dict[str, Any] = {
    "image_size": 16,
    "batch_size": 2,
    "projection_hidden_dim": 16,
    "projection_dim": 8,
    "prediction_hidden_dim": 16,
    "num_workers": 0,
    "min_size": 16,
    "device": "cpu",
    "progress": False,
    "nproc_per_node": 1,
}
#: Single-threaded children: equal thread counts make CPU runs bit-reproducible and avoid oversubscription.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def base_params() -> dict[str, Any]:
    """A fresh copy of ``fc_pretrain`` from conf/base/parameters_fc_pretrain.yml."""
    return dict(yaml.safe_load(PARAMETERS_FILE.read_text(encoding="utf-8"))["fc_pretrain"])


def fc_params(work_dir: str | os.PathLike[str], /, **overrides: Any) -> dict[str, Any]:
    """The ``fc_pretrain`` parameters of a tiny CPU run in ``work_dir``: conf/base + :data:`TINY` + overrides."""
    return {**base_params(), **TINY, "work_dir": str(work_dir), **overrides}


def fc_config(work_dir: str | os.PathLike[str], /, **overrides: Any) -> FCTrainConfig:
    """:func:`fc_params` as a checked :class:`FCTrainConfig`."""
    return FCTrainConfig.from_dict(fc_params(work_dir, **overrides))


def write_frames(root: Path, n: int, size: tuple[int, int] = (24, 20), seed: int = 0) -> list[str]:
    """``n`` random-content PNGs ``root/00000.png ...`` of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def model_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of a checkpoint file."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    """Bitwise equality of two state dicts (same keys, every tensor equal)."""
    assert want.keys() == got.keys()
    different = [k for k in want if not torch.equal(want[k], got[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
