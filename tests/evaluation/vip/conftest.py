"""Fixtures of the VIP tests: a session-wide demo dataset (read-only) and private copies to corrupt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sfc.data.demo_vip import make_demo_vip


@pytest.fixture(scope="session")
def demo_vip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the default demo VIP dataset (2 videos ``demo-00``/``demo-01`` x 8 frames of 120 x 160).
    Read-only: copy it (:func:`vip_copy`) before changing files."""
    return make_demo_vip(tmp_path_factory.mktemp("demo_vip"))


@pytest.fixture()
def vip_copy(demo_vip: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the demo dataset."""
    dst = tmp_path / "vip"
    shutil.copytree(demo_vip, dst)
    return dst
