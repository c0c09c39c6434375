"""Shared pytest fixtures.

``tiny_davis`` is a session-scoped synthetic dataset in the DAVIS-2017 layout (2 sequences x 6 frames
of 64x96, palette masks on every frame, split ``val``), generated once per test session with
:func:`sfc.data.demo.make_demo_davis`. Treat it as read-only; copy it (``shutil.copytree``) before
corrupting files in a test.
"""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports kedro: keep Kedro's project logging (conf/logging.yml, which appends to
# info.log in the working directory) out of test runs, and keep every tool offline.
os.environ.setdefault(
    "KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("logging_tests.yml"))
)
for _var, _value in (("KEDRO_DISABLE_TELEMETRY", "1"), ("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true")):
    os.environ.setdefault(_var, _value)

import pytest  # noqa: E402  (after the environment set-up above)

from sfc.data.demo import make_demo_davis  # noqa: E402

#: Arguments of the ``tiny_davis`` dataset (tests may assert against them).
TINY_DAVIS_KWARGS: dict[str, object] = {"n_sequences": 2, "n_frames": 6, "size": (64, 96), "seed": 0}


@pytest.fixture(scope="session")
def tiny_davis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small read-only demo DAVIS dataset (sequences ``demo-00``, ``demo-01``)."""
    root = tmp_path_factory.mktemp("tiny_davis")
    return make_demo_davis(root, **TINY_DAVIS_KWARGS)  # type: ignore[arg-type]
