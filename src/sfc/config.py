"""Typed, strict parameter groups: the one place parameters are checked.

Every top-level key of the Kedro parameters (``conf/base/parameters*.yml``) is a *group* with a frozen
dataclass here (or, for ``fc_pretrain``, in :mod:`sfc.training.config`). ``Group.from_dict(values)``
is the only way nodes turn a parameters dict into a config:

* an unknown key is an error naming it and the allowed keys (``--params propagation.topK=5`` fails);
* a missing key is an error: defaults live in the YAML files under ``conf/`` only, never in code;
* values are type-checked (an ``int`` field refuses ``"ten"`` and ``True``; a ``float`` field takes
  ``1``); a list field also takes a single value, since Kedro's ``--params`` cannot pass lists;
* ranges and combinations are checked by each group (``topk >= 1``, a semantic checkpoint without
  an arch ...).

:func:`sfc.parameters.validate_parameters` checks every group of a whole parameters dict at once;
the project's Kedro hook (:mod:`sfc.hooks`) calls it before a run, so a typo fails before any node
runs. This module imports neither Kedro nor MLflow.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from sfc.device import DEVICE_PATTERN

__all__ = [
    "BackboneConfig",
    "CacheFeaturesConfig",
    "ConfigError",
    "DavisConfig",
    "FramesConfig",
    "FusionConfig",
    "FusedPropagationConfig",
    "FusionSearchConfig",
    "JhmdbConfig",
    "PropagationConfig",
    "RuntimeConfig",
    "SemanticConfig",
    "StrictConfig",
    "VideoBenchmarkConfig",
    "VipConfig",
]


class ConfigError(ValueError):
    """Parameters that do not fit their group (unknown or missing keys, wrong types, bad values)."""


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp`` where lossless (int -> float, list -> tuple), else ``TypeError``."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own message says what is wrong
            return _coerce(value, options[0])
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError(f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected one of {_type_name(tp)}, got {value!r}")
    if isinstance(tp, type) and issubclass(tp, StrictConfig):  # a nested group, e.g. jhmdb.fused
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return tp.from_dict(value)
        raise TypeError(f"expected a mapping of {', '.join(tp.keys())}, got {value!r}")
    if origin is tuple:
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        items = list(value) if isinstance(value, list | tuple) else [value]
        try:
            return tuple(_coerce(v, item) for v in items)
        except TypeError as exc:
            raise TypeError(f"expected {_type_name(tp)}: {exc}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this module does not know
        raise TypeError(f"unsupported field type {tp!r}")
    raise TypeError(f"expected {_type_name(tp)}, got {value!r}")


@dataclass(frozen=True)
class StrictConfig:
    """Base of every parameter group: strict :meth:`from_dict`, checks in ``__post_init__``.

    Subclasses set ``GROUP`` (the top-level parameter key) and may override :meth:`_problems` to
    check ranges; a field whose YAML key is not a Python name declares it with
    ``field(metadata={"key": "lambda"})``.
    """

    GROUP: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> list[str]:
        """The group's parameter keys, as written in YAML, sorted."""
        return sorted(_key(f) for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Self:
        """Build the config from a parameters dict; every problem is reported in one ``ConfigError``.

        Raises:
            ConfigError: ``values`` is not a mapping, or has unknown keys (named, with the allowed
                ones), missing keys, values of the wrong type, or values out of range.
        """
        group = cls.GROUP or cls.__name__
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"parameter group {group!r} must be a mapping of {', '.join(cls.keys())}; got {values!r}"
            )
        fields = {_key(f): f for f in dataclasses.fields(cls)}
        problems = []
        unknown = sorted(str(k) for k in values if k not in fields)
        for k in unknown:
            problems.append(f"{group}.{k}: unknown parameter; {group} takes: {', '.join(sorted(fields))}")
        missing = sorted(k for k in fields if k not in values)
        for k in missing:
            problems.append(f"{group}.{k}: missing (set it in the parameters YAML under conf/)")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**{f.name: values[k] for k, f in fields.items()})

    def __post_init__(self) -> None:
        group = self.GROUP or type(self).__name__
        hints = typing.get_type_hints(type(self))
        problems = []
        for f in dataclasses.fields(self):
            try:
                object.__setattr__(self, f.name, _coerce(getattr(self, f.name), hints[f.name]))
            except TypeError as exc:
                problems.append(f"{group}.{_key(f)}: {exc}")
            except ConfigError as exc:  # a nested group: its messages start with its own GROUP
                inner = hints[f.name].GROUP
                here = f"{group}.{_key(f)}"
                problems.extend(
                    (f"{here}.{item[len(inner) + 1:]}" if item.startswith(inner + ".") else item).replace(
                        f"; {inner} takes:", f"; {here} takes:"
                    ).replace(f"{inner} takes:", f"{here} takes:")
                    for item in str(exc).split("; ")
                )
        if not problems:
            problems = [f"{group}.{msg}" for msg in self._problems()]
        if problems:
            raise ConfigError("; ".join(problems))

    def _problems(self) -> list[str]:
        """Range / consistency problems as ``"<key>: <what is wrong>"`` (none by default)."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """The parameters dict (YAML keys; tuples as lists) that :meth:`from_dict` turns back into ``self``."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[_key(f)] = list(v) if isinstance(v, tuple) else v.to_dict() if isinstance(v, StrictConfig) else v
        return out


def _at_least(problems: list[str], key: str, value: float | None, low: float, *, strict: bool = False) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or (value <= low if strict else value < low)
    if bad:
        problems.append(f"{key}: must be {'>' if strict else '>='} {low:g}, got {value}")


# --------------------------------------------------------------------------------------- shared groups
@dataclass(frozen=True)
class DavisConfig(StrictConfig):
    """``davis.*``: which DAVIS-2017 sequences and frames, at which input scale."""

    GROUP: ClassVar[str] = "davis"
    root: str
    split: str
    sequences: tuple[str, ...] | None
    max_frames: int | None
    scale: float

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.sequences is not None and len(self.sequences) == 0:
            problems.append("sequences: an empty list selects nothing; name sequences, or null for the split")
        if self.max_frames is not None and self.max_frames < 3:
            problems.append(f"max_frames: must be >= 3 (the first and last frames are not scored), got {self.max_frames}")
        _at_least(problems, "scale", self.scale, 0.0, strict=True)
        return problems


def _known_archs() -> tuple[str, ...]:
    from sfc.models.checkpoints import ARCHS  # torch-heavy: only when a config is built

    return tuple(ARCHS)


@dataclass(frozen=True)
class BackboneConfig(StrictConfig):
    """``backbone.*``: the (fine-grained) network whose features are propagated."""

    GROUP: ClassVar[str] = "backbone"
    arch: str
    checkpoint: str | None
    seed: int

    def _problems(self) -> list[str]:
        archs = _known_archs()
        return [] if self.arch in archs else [f"arch: unknown {self.arch!r}; one of {', '.join(archs)}"]


@dataclass(frozen=True)
class SemanticConfig(StrictConfig):
    """``semantic.*``: an optional second (semantic) network, late-fused with ``backbone`` (SFC eq. 7)."""

    GROUP: ClassVar[str] = "semantic"
    arch: str | None
    checkpoint: str | None
    seed: int

    @property
    def enabled(self) -> bool:
        """A semantic network is configured (``arch`` is not null)."""
        return self.arch is not None

    def _problems(self) -> list[str]:
        if self.arch is None:
            if self.checkpoint is not None:
                return [
                    f"checkpoint: set ({self.checkpoint}) but semantic.arch is null, so it would be ignored; "
                    "name the semantic network's arch, or set semantic.checkpoint to null"
                ]
            return []
        archs = _known_archs()
        return [] if self.arch in archs else [f"arch: unknown {self.arch!r}; one of {', '.join(archs)} or null"]


@dataclass(frozen=True)
class FusionConfig(StrictConfig):
    """``fusion.*``: late fusion F = L2([L2(Fs), lambda * L2(Ff)]) (SFC eq. 7); read with ``semantic.arch``."""

    GROUP: ClassVar[str] = "fusion"
    lam: float = field(metadata={"key": "lambda"})
    align: Literal["error", "resize"]

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "lambda", self.lam, 0.0)
        return problems


@dataclass(frozen=True)
class PropagationConfig(StrictConfig):
    """``propagation.*``: the CRW/SFC label-propagation hyper-parameters."""

    GROUP: ClassVar[str] = "propagation"
    topk: int
    temperature: float
    radius: float
    context: int

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "topk", self.topk, 1)
        _at_least(problems, "temperature", self.temperature, 0.0, strict=True)
        _at_least(problems, "radius", self.radius, 0.0, strict=True)
        _at_least(problems, "context", self.context, 0)
        return problems


@dataclass(frozen=True)
class RuntimeConfig(StrictConfig):
    """``runtime.*``: where evaluation runs and how its reports are produced."""

    GROUP: ClassVar[str] = "runtime"
    device: str
    eval_workers: int | None
    overlays: int

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not DEVICE_PATTERN.match(self.device):
            problems.append(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        _at_least(problems, "eval_workers", self.eval_workers, 1)
        _at_least(problems, "overlays", self.overlays, 0)
        return problems


@dataclass(frozen=True)
class FusedPropagationConfig(StrictConfig):
    """A benchmark's propagation settings for two fused networks: lambda (SFC eq. 7) and the CRW knobs."""

    GROUP: ClassVar[str] = "fused"
    lam: float = field(metadata={"key": "lambda"})
    topk: int
    temperature: float
    radius: float
    context: int

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "lambda", self.lam, 0.0)
        return problems + [p for p in self.propagation()._problems()]

    def propagation(self) -> PropagationConfig:
        """The propagation part (top-k, temperature, r', m)."""
        return PropagationConfig(topk=self.topk, temperature=self.temperature, radius=self.radius, context=self.context)


@dataclass(frozen=True)
class VideoBenchmarkConfig(StrictConfig):
    """What the JHMDB and VIP groups share: where the data is, the input size, which settings apply."""

    root: str
    split: str | None
    image_size: int | None
    settings: Literal["paper", "shared"]
    single: PropagationConfig
    fused: FusedPropagationConfig

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "image_size", self.image_size, 8)
        return problems

    def resolve(
        self, fused: bool, propagation: PropagationConfig, fusion: FusionConfig
    ) -> tuple[PropagationConfig, float]:
        """(propagation settings, fusion lambda) for one network (``fused=False``) or two.

        ``settings: paper``: the benchmark's ``single`` (SFC Table A.1) or ``fused`` (Table A.2) values;
        ``settings: shared``: the ``propagation.*`` and ``fusion.lambda`` groups (which
        ``-e fusion_best`` sets from a grid search).
        """
        if self.settings == "shared":
            return propagation, fusion.lam
        if fused:
            return self.fused.propagation(), self.fused.lam
        return self.single, fusion.lam


@dataclass(frozen=True)
class JhmdbConfig(VideoBenchmarkConfig):
    """``jhmdb.*``: the JHMDB root and split, the input size, and the propagation settings."""

    GROUP: ClassVar[str] = "jhmdb"


@dataclass(frozen=True)
class VipConfig(VideoBenchmarkConfig):
    """``vip.*``: the VIP root and video list, the input size, the frames kept, the propagation settings."""

    GROUP: ClassVar[str] = "vip"
    max_frames: int | None

    def _problems(self) -> list[str]:
        problems = super()._problems()
        _at_least(problems, "max_frames", self.max_frames, 1)
        return problems


# ------------------------------------------------------------------------------------ pipeline groups
@dataclass(frozen=True)
class CacheFeaturesConfig(StrictConfig):
    """``cache_features.*``."""

    GROUP: ClassVar[str] = "cache_features"
    batch_size: int

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "batch_size", self.batch_size, 1)
        return problems


@dataclass(frozen=True)
class FusionSearchConfig(StrictConfig):
    """``fusion_search.*``: the validation list and the grid axes (null = the evaluate_davis value)."""

    GROUP: ClassVar[str] = "fusion_search"
    sequences: tuple[str, ...] | None
    lambdas: tuple[float, ...] | None
    topks: tuple[int, ...] | None
    radii: tuple[float, ...] | None
    temperatures: tuple[float, ...] | None
    contexts: tuple[int, ...] | None

    AXES: ClassVar[dict[str, tuple[str, str]]] = {
        # axis -> (group, key) whose single value a null axis takes
        "lambdas": ("fusion", "lambda"),
        "topks": ("propagation", "topk"),
        "radii": ("propagation", "radius"),
        "temperatures": ("propagation", "temperature"),
        "contexts": ("propagation", "context"),
    }

    def _problems(self) -> list[str]:
        problems = []
        if self.sequences is not None and len(self.sequences) == 0:
            problems.append("sequences: an empty list; name validation sequences, or null for davis.sequences")
        for axis, (group, key) in self.AXES.items():
            values = getattr(self, axis)
            if values is not None and len(values) == 0:
                problems.append(f"{axis}: an empty list leaves the grid empty; give values, or null for {group}.{key}")
        return problems


@dataclass(frozen=True)
class FramesConfig(StrictConfig):
    """``frames.*``: where ``extract_frames`` finds frames and videos (layouts: docs/datasets.md)."""

    GROUP: ClassVar[str] = "frames"
    root: str
    kind: Literal["auto", "ytvos", "coco", "davis", "folder", "videos", "mixed"]
    extensions: tuple[str, ...]
    video_extensions: tuple[str, ...]
    verify: bool
    video_fps: float | None
    video_max_seconds: float | None
    jpeg_quality: int
    output_dir: str
    workers: int | None

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _at_least(problems, "video_fps", self.video_fps, 0.0, strict=True)
        _at_least(problems, "video_max_seconds", self.video_max_seconds, 0.0, strict=True)
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality: must be in 1..100, got {self.jpeg_quality}")
        _at_least(problems, "workers", self.workers, 1)
        return problems
