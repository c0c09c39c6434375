"""The registry of every parameter group, and the check of a whole parameters dict.

:mod:`sfc.config` defines the groups read by evaluation and the pipelines; the trainer owns its own
(:class:`sfc.training.config.FCTrainConfig`). This module gathers them, for the project hook that
refuses bad parameters before a run (:mod:`sfc.hooks`) and for tests that keep conf/ and code in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sfc.config import (
    BackboneConfig,
    CacheFeaturesConfig,
    ConfigError,
    DavisConfig,
    FramesConfig,
    FusionConfig,
    FusionSearchConfig,
    JhmdbConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
    StrictConfig,
    VipConfig,
)
from sfc.training.config import FCTrainConfig

__all__ = ["GROUPS", "validate_parameters"]

GROUPS: dict[str, type[StrictConfig]] = {
    cls.GROUP: cls
    for cls in (
        DavisConfig,
        BackboneConfig,
        SemanticConfig,
        FusionConfig,
        PropagationConfig,
        RuntimeConfig,
        CacheFeaturesConfig,
        FusionSearchConfig,
        FramesConfig,
        FCTrainConfig,
        JhmdbConfig,
        VipConfig,
    )
}
"""Every parameter group of the project: ``{group name: config class}``."""


def validate_parameters(params: Mapping[str, Any]) -> dict[str, StrictConfig]:
    """Check a whole parameters dict: every group known, complete, typed and in range.

    Args:
        params: Kedro's merged parameters (conf/base + env + ``--params``).

    Returns:
        ``{group: config}`` for every group.

    Raises:
        ConfigError: every problem found, one per line (unknown groups, keys, types, ranges).
    """
    problems = []
    configs: dict[str, StrictConfig] = {}
    for name in sorted(set(params) - set(GROUPS)):
        problems.append(f"{name}: unknown parameter group; the groups are {', '.join(sorted(GROUPS))}")
    for name, cls in GROUPS.items():
        if name not in params:
            problems.append(f"{name}: parameter group missing (conf/base defines it)")
            continue
        try:
            configs[name] = cls.from_dict(params[name])
        except ConfigError as exc:
            problems.extend(_split(str(exc), name))
    if problems:
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(problems))
    return configs


def _split(message: str, group: str) -> list[str]:
    """One problem per item of a ``from_dict`` message (items start with ``<group>.``)."""
    parts = message.split(f"; {group}.")
    return [parts[0], *(f"{group}.{p}" for p in parts[1:])]
