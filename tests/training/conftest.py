"""Fixtures of the training tests (helpers that are not fixtures live in :mod:`tests.training.helpers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.training.helpers import write_frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Six 24 x 20 PNG frames (read-only)."""
    return write_frames(tmp_path_factory.mktemp("frames"), 6)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch single-threaded, like the CHILD_ENV subprocesses (same reduction order -> same bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
