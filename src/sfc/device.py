"""The one device resolver: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a checked ``torch.device``."""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICE_PATTERN", "check_device_name", "resolve_device"]

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""Accepted device names (parameters ``runtime.device`` and ``fc_pretrain.device``)."""


def check_device_name(name: str) -> str:
    """Return ``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else raise ``ValueError``."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    return name


def resolve_device(name: str | torch.device | None = "auto", *, local_rank: int = 0) -> torch.device:
    """The device to run on.

    Args:
        name: ``auto`` (or None): CUDA when available, else CPU; ``cpu``; ``cuda`` (this process's
            GPU: ``cuda:<local_rank>``); ``cuda:N``; or a ``torch.device``.
        local_rank: the GPU of this process in a multi-process run (used by ``auto`` and ``cuda``).

    Returns:
        A ``torch.device`` with an explicit index for CUDA.

    Raises:
        ValueError: a name that is none of the above.
        RuntimeError: CUDA requested but not available, or ``cuda:N`` beyond the visible GPUs.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = "auto" if name is None else check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    index = int(name.split(":")[1]) if ":" in name else local_rank
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device cuda:{index} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return torch.device("cuda", index)
