"""Fixtures of the JHMDB tests: a tiny generated dataset in the JHMDB layout and writable copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sfc.data.demo_jhmdb import make_demo_jhmdb

#: Arguments of the ``tiny_jhmdb`` dataset (videos ``demo/video_00``, ``demo/video_01``).
TINY_JHMDB_KWARGS: dict[str, object] = {"n_videos": 2, "n_frames": 5, "size": (48, 64), "seed": 0}


@pytest.fixture(scope="session")
def tiny_jhmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small read-only demo JHMDB dataset; copy it (``jhmdb_copy``) before corrupting files."""
    return make_demo_jhmdb(tmp_path_factory.mktemp("tiny_jhmdb"), **TINY_JHMDB_KWARGS)  # type: ignore[arg-type]


@pytest.fixture()
def jhmdb_copy(tiny_jhmdb: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``tiny_jhmdb`` (safe to corrupt)."""
    dst = tmp_path / "jhmdb"
    shutil.copytree(tiny_jhmdb, dst)
    return dst
