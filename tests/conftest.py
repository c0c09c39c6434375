"""Shared pytest fixtures.

``tiny_davis`` is a session-scoped synthetic dataset in the DAVIS-2017 layout (2 sequences x 6 frames
of 64x96, palette masks on every frame, split ``val``), generated once per test session with
:func:`sfc.data.demo.make_demo_davis`. Treat it as read-only; copy it (``shutil.copytree``) before
corrupting files in a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sfc.data.demo import make_demo_davis

#: Arguments of the ``tiny_davis`` dataset (tests may assert against them).
TINY_DAVIS_KWARGS: dict[str, object] = {"n_sequences": 2, "n_frames": 6, "size": (64, 96), "seed": 0}


@pytest.fixture(scope="session")
def tiny_davis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small read-only demo DAVIS dataset (sequences ``demo-00``, ``demo-01``)."""
    root = tmp_path_factory.mktemp("tiny_davis")
    return make_demo_davis(root, **TINY_DAVIS_KWARGS)  # type: ignore[arg-type]
