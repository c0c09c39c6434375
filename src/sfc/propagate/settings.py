"""Settings of ``sfc propagate``: the project's ``conf/base/parameters.yml`` with command-line overrides.

Defaults live in conf/ only. :func:`load_settings` reads the groups ``evaluate_davis`` reads from the
project's ``conf/base/parameters.yml`` (found beside ``src/``, i.e. the checkout the package is
installed from; another file with ``parameters``), checks each with its typed config
(:mod:`sfc.config`) and puts the given overrides on top:

============================  ==========================================================
setting                       parameter (conf/base/parameters.yml)
============================  ==========================================================
FC network                    ``backbone.arch``, ``backbone.checkpoint``, ``backbone.seed``
semantic network (SFC)        ``semantic.arch``, ``semantic.checkpoint``, ``semantic.seed``
fusion weight and alignment   ``fusion.lambda``, ``fusion.align``
top-k, temperature, r', m     ``propagation.topk``, ``.temperature``, ``.radius``, ``.context``
input scale                   ``davis.scale``
device                        ``runtime.device``
============================  ==========================================================

So a run with no flag propagates exactly as ``evaluate_davis`` does with the same parameters. With a
semantic network the propagation values stay those of the ``propagation`` group: the paper's SFC
values (top-k 15, temperature 0.1, r' 15) apply only when given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfc.config import (
    BackboneConfig,
    DavisConfig,
    FusionConfig,
    PropagationConfig,
    RuntimeConfig,
    SemanticConfig,
)
from sfc.propagate.errors import PropagateInputError

__all__ = ["PropagateSettings", "load_settings", "project_parameters_path"]

PathLike = str | os.PathLike[str]


def project_parameters_path() -> Path:
    """``<project>/conf/base/parameters.yml`` of the checkout this package lives in (``<project>/src/sfc``)."""
    return Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters.yml"


@dataclass(frozen=True)
class PropagateSettings:
    """Everything that decides a propagation's result, plus the device.

    Attributes:
        backbone: the FC (fine-grained) network.
        semantic: the optional semantic network (``arch`` None = none).
        fusion: lambda and align, used only with a semantic network (SFC eq. 7).
        propagation: top-k, temperature, r', m.
        scale: input resize factor before the network(s) (``davis.scale``).
        device: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``.
        parameters: the parameters file the defaults came from.
    """

    backbone: BackboneConfig
    semantic: SemanticConfig
    fusion: FusionConfig
    propagation: PropagationConfig
    scale: float
    device: str
    parameters: Path

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide the masks (JSON-able; checkpoints as given, no device)."""
        out: dict[str, Any] = {
            "backbone": self.backbone.to_dict(),
            "semantic": self.semantic.to_dict(),
            "propagation": self.propagation.to_dict(),
            "scale": self.scale,
        }
        if self.semantic.enabled:
            out["fusion"] = self.fusion.to_dict()
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every setting (for ``summary.json``)."""
        return {**self.result_settings(), "device": self.device, "parameters_file": str(self.parameters)}


def _read_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: parameters file not found; sfc propagate reads its defaults from the project's "
            "conf/base/parameters.yml (run it from a checkout of the project, or pass --parameters FILE)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PropagateInputError(f"{path}: expected a YAML parameters file, found invalid YAML ({exc})") from exc
    if not isinstance(data, Mapping):
        raise PropagateInputError(f"{path}: expected a mapping of parameter groups, found {type(data).__name__}")
    missing = [g for g in ("davis", "backbone", "semantic", "fusion", "propagation", "runtime") if g not in data]
    if missing:
        raise PropagateInputError(f"{path}: expected the parameter groups {', '.join(missing)}, found none of them")
    return data


def load_settings(
    parameters: PathLike | None = None,
    *,
    fc_checkpoint: str | None = None,
    semantic_arch: str | None = None,
    semantic_checkpoint: str | None = None,
    lam: float | None = None,
    scale: float | None = None,
    topk: int | None = None,
    temperature: float | None = None,
    radius: float | None = None,
    context: int | None = None,
    device: str | None = None,
) -> PropagateSettings:
    """The parameters file's groups with the given overrides (None = keep the file's value).

    Args:
        parameters: the YAML file (default: :func:`project_parameters_path`).
        fc_checkpoint: ``backbone.checkpoint``.
        semantic_arch, semantic_checkpoint: ``semantic.arch`` / ``semantic.checkpoint``.
        lam: ``fusion.lambda`` (only with a semantic network).
        scale: ``davis.scale``.
        topk, temperature, radius, context: ``propagation.*``.
        device: ``runtime.device``.

    Raises:
        FileNotFoundError: the parameters file or a checkpoint does not exist.
        ValueError: a value out of range (:class:`sfc.config.ConfigError`), or ``lam`` without a
            semantic network.
    """
    path = Path(parameters) if parameters is not None else project_parameters_path()
    params = _read_yaml(path)

    def override(cfg: Any, **values: Any) -> Any:
        given = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(cfg, **given) if given else cfg  # replace() re-runs the checks

    backbone = override(BackboneConfig.from_dict(params["backbone"]), checkpoint=fc_checkpoint)
    semantic = SemanticConfig.from_dict(params["semantic"])
    if semantic_arch is not None or semantic_checkpoint is not None:
        semantic = dataclasses.replace(
            semantic,
            arch=semantic_arch if semantic_arch is not None else semantic.arch,
            checkpoint=semantic_checkpoint if semantic_checkpoint is not None else semantic.checkpoint,
        )
    if lam is not None and not semantic.enabled:
        raise PropagateInputError("--lambda weighs the FC features against a semantic network's: give --semantic-arch too")
    fusion = override(FusionConfig.from_dict(params["fusion"]), lam=lam)
    propagation = override(
        PropagationConfig.from_dict(params["propagation"]), topk=topk, temperature=temperature, radius=radius, context=context
    )
    davis = override(DavisConfig.from_dict(params["davis"]), scale=scale)
    runtime = override(RuntimeConfig.from_dict(params["runtime"]), device=device)
    for what, ckpt in (("--fc-checkpoint / backbone.checkpoint", backbone.checkpoint),
                       ("--semantic-checkpoint / semantic.checkpoint", semantic.checkpoint)):
        if ckpt is not None and not Path(ckpt).is_file():
            raise FileNotFoundError(f"{ckpt}: checkpoint file not found ({what})")
    return PropagateSettings(backbone, semantic, fusion, propagation, davis.scale, runtime.device, path)
