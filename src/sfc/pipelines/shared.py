"""Nodes shared by several pipelines (one function, so a combined run executes each once).

``select_davis_sequences`` is used by ``evaluate_davis`` and ``cache_features`` under the same node
name, inputs and output: ``kedro run --pipelines cache_features,evaluate_davis`` runs it once.
"""

from __future__ import annotations

from typing import Any

from sfc.config import DavisConfig
from sfc.evaluation.davis.evaluate import select_sequences


def select_davis_sequences(davis: dict[str, Any]) -> list[str]:
    """The sequences ``davis.*`` selects, every annotation checked before any long work.

    Raises:
        sfc.config.ConfigError: bad ``davis.*`` values.
        sfc.evaluation.davis.reader.DavisFormatError: unknown sequences or a bad file (named).
    """
    return select_sequences(DavisConfig.from_dict(davis))
