"""One strict loader for every backbone checkpoint layout SFC uses, with explicit layout detection.

Layouts (``LAYOUT_SPECS``; key names as written by the official training code of each method and read
by SFC's ``models/encoder.py``; ``<bb>`` = torchvision ResNet keys such as ``conv1.weight``,
``layer1.0.bn1.running_mean``):

* ``torchvision``: the state dict is the top level (or under ``['state_dict']`` / ``['model']``),
  backbone keys ``<bb>`` without prefix; ``layer4.*`` and ``fc.*`` ignored.
* ``sfc_fc`` (official SFC ``train.py``: ``{'model', 'optimizer', 'epoch', 'args'}``): under ``['model']``,
  backbone keys ``online_encoder.<bb>``; ``target_encoder.*``, ``online_projector.*``,
  ``target_projector.*`` and ``predictor.*`` ignored.
* ``sfc_native`` (our FC trainer, :func:`make_native_checkpoint`): exactly the ``sfc_fc`` keys under
  ``['model']``, plus extra top-level metadata (``format``, ``arch``, ``step`` ...). Any top-level key
  outside the official four makes an ``online_encoder.`` checkpoint ``sfc_native``; a saved ``arch`` is
  checked against the requested one.
* ``moco`` (MoCo v1/v2): under ``['state_dict']``, backbone keys ``module.encoder_q.<bb>``;
  ``module.encoder_k.*``, ``module.queue``, ``module.queue_ptr`` and the ``fc`` head (v1 ``fc.weight``,
  v2 ``fc.0.*`` / ``fc.2.*``) ignored.
* ``simsiam``: under ``['state_dict']``, backbone keys ``module.encoder.<bb>``; the projector
  ``module.encoder.fc.*`` and ``module.predictor.*`` ignored.
* ``byol`` (BYOL as trained by solo-learn, a PyTorch Lightning checkpoint): under ``['state_dict']``,
  backbone keys ``backbone.<bb>``; ``momentum_backbone.*``, ``projector.*``, ``momentum_projector.*``,
  ``predictor.*`` and ``classifier.*`` ignored. (BYOL weights converted to plain torchvision keys,
  e.g. from DeepMind's release, load as ``torchvision``.)
* ``pixpro``: under ``['model']``, backbone keys ``module.encoder.<bb>``; ``module.encoder_k.*``,
  ``module.projector*`` (incl. ``_k`` / ``_instance``), ``module.predictor.*`` and
  ``module.value_transform.*`` ignored.
* ``crw``: under ``['model']``, backbone keys ``encoder.model.<bb>`` (CRW wraps the ResNet in ``From3D``);
  ``selfsim_fc.*`` ignored.

ViT layouts (facebookresearch/dino; ``<vit>`` = ``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``, see
:mod:`sfc.models.vit`); only ViT archs load them and ViT archs load nothing else:

* ``dino``: a released DINO backbone (``dino_deitsmall16_pretrain.pth``, ``dino_deitsmall8_pretrain.pth``):
  the state dict is the top level, keys ``<vit>`` without prefix; ``head.*`` ignored.
* ``dino_teacher``: a DINO training checkpoint (``checkpoint.pth``: ``student``, ``teacher``,
  ``optimizer``, ``epoch``, ``args``, ``dino_loss``): the teacher (the network DINO evaluates) under
  ``['teacher']``, keys ``backbone.<vit>`` or, when saved from a DDP-wrapped teacher,
  ``module.backbone.<vit>`` (a leading ``module.`` is stripped first, as DINO's
  ``load_pretrained_weights`` does); the projection head ``head.*`` and the student ignored.

The official FC model keeps ``layer4`` during training (``online_encoder.layer4.*``) and MoCo / SimSiam /
torchvision files hold ``layer4`` and ``fc``; those are dropped since the test-time backbone removes them.

CRW specifics: its released ``pretrained.pth`` may name some convs ``...conv1.1.weight`` /
``...conv2.1.weight`` (presumably convs once wrapped in a ``Sequential`` after a parameter-free padding
module); like CRW's ``test.py`` these
are renamed to ``...conv1.weight`` / ``...conv2.weight``. (SFC's own ``make_encoder`` applies that rename
without stripping the ``encoder.model.`` prefix, so its ``partial_load`` silently skips such keys; here a
key that cannot be placed is an error instead.) CRW's encoder uses reflect padding
(``modify(padding='reflect')``): the backbone built for a ``crw`` checkpoint sets
``padding_mode='reflect'`` on every padded conv (stem 7x7 and all 3x3 convs).

Strictness: after stripping the prefix and dropping ``layer4.*`` / ``fc.*``, the keys must equal the
backbone's exactly (only a missing BatchNorm ``num_batches_tracked`` counter is tolerated; it does not
affect eval-mode outputs); missing, unexpected or shape-mismatched keys raise :class:`CheckpointError`
naming the file, the layout and the offending keys, and guessing the checkpoint's architecture.

Reading: ``torch.load(path, map_location="cpu", weights_only=True)`` with ``argparse.Namespace``
allow-listed (the official SFC and CRW training scripts pickle their ``args``). If the file still needs
other Python objects it is reloaded with ``weights_only=False`` after a warning: that executes pickled
code, so only point the loader at files you trust.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from sfc.models.backbones import FEATURE_DIMS, PaddingMode, ResNetBackbone, build_backbone
from sfc.models.vit import VIT_CONFIGS, VisionTransformer, ViTConfig, build_vit, resolve_vit_config

Family = Literal["resnet", "vit"]
Backbone = ResNetBackbone | VisionTransformer

logger = logging.getLogger(__name__)

NATIVE_FORMAT = "sfc_native"
"""Value of the top-level ``format`` key written by :func:`make_native_checkpoint`."""

_BACKBONE_ROOTS: dict[str, tuple[str, ...]] = {
    "resnet": ("conv1.", "bn1.", "layer1.", "layer2.", "layer3."),
    "vit": ("cls_token", "pos_embed", "patch_embed.", "blocks."),
}
_DROPPED_ROOTS: dict[str, tuple[str, ...]] = {
    "resnet": ("layer4.", "fc."),  # removed from the test-time backbone
    "vit": ("head.",),  # DINO's backbone head is nn.Identity; a classifier head is not a feature
}
_FAMILY_DESCRIPTION = {
    "resnet": "a stride-8 {arch} backbone (conv1, bn1, layer1..layer3; layer4/fc ignored)",
    "vit": "a {arch} ViT (cls_token, pos_embed, patch_embed, blocks, norm; head ignored)",
}
_OFFICIAL_SFC_TOP_KEYS = frozenset({"model", "optimizer", "epoch", "args"})
_CRW_QUIRK = re.compile(r"(^|\.)(conv[12])\.1\.weight$")
_N_SHOWN = 10


class CheckpointError(ValueError):
    """A checkpoint cannot be read, its layout is unknown, or its keys do not fit the backbone."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (also a ``FileNotFoundError``)."""


@dataclass(frozen=True)
class LayoutSpec:
    """Where a layout keeps its backbone tensors.

    Attributes:
        name: layout name.
        containers: top-level keys that may hold the state dict, in order (None = the top level itself).
        prefix: prefix of the backbone keys inside the state dict.
        head_prefixes: known non-backbone keys inside the state dict (ignored without a warning).
        padding_mode: conv padding the backbone must use for these weights.
        family: ``"resnet"`` or ``"vit"``: the backbones these weights fit.
        strip: leading parts removed from every key before anything else (DDP's ``module.``).
    """

    name: str
    containers: tuple[str | None, ...]
    prefix: str
    head_prefixes: tuple[str, ...] = ()
    padding_mode: PaddingMode = "zeros"
    family: Family = "resnet"
    strip: tuple[str, ...] = ()

    def key(self, key: Any) -> str:
        """A state-dict key with :attr:`strip` applied."""
        key = str(key)
        for part in self.strip:
            if key.startswith(part):
                return key[len(part) :]
        return key

    def describe(self) -> str:
        """Short human-readable description used in error messages."""
        where = " or ".join("top level" if c is None else f"['{c}']" for c in self.containers)
        prefix = f"'{self.prefix}'" if self.prefix else "no prefix"
        if self.strip:
            prefix += " (after stripping " + " / ".join(repr(s) for s in self.strip) + ")"
        example = "conv1.weight" if self.family == "resnet" else "pos_embed"
        return f"{self.name}: {self.family} keys in {where} with {prefix} (e.g. '{self.prefix}{example}')"


_SFC_HEADS = ("target_encoder.", "online_projector.", "target_projector.", "predictor.")

LAYOUT_SPECS: dict[str, LayoutSpec] = {
    "sfc_native": LayoutSpec("sfc_native", ("model",), "online_encoder.", _SFC_HEADS),
    "sfc_fc": LayoutSpec("sfc_fc", ("model",), "online_encoder.", _SFC_HEADS),
    "pixpro": LayoutSpec(
        "pixpro",
        ("model",),
        "module.encoder.",
        ("module.encoder_k.", "module.projector", "module.predictor.", "module.value_transform."),
    ),
    "crw": LayoutSpec("crw", ("model",), "encoder.model.", ("selfsim_fc.",), padding_mode="reflect"),
    "moco": LayoutSpec("moco", ("state_dict",), "module.encoder_q.", ("module.encoder_k.", "module.queue")),
    "simsiam": LayoutSpec("simsiam", ("state_dict",), "module.encoder.", ("module.predictor.",)),
    "byol": LayoutSpec(
        "byol",
        ("state_dict",),
        "backbone.",
        ("momentum_backbone.", "projector.", "momentum_projector.", "predictor.", "classifier."),
    ),
    "torchvision": LayoutSpec("torchvision", (None, "state_dict", "model"), ""),
    "dino": LayoutSpec("dino", (None,), "", family="vit"),
    "dino_teacher": LayoutSpec(
        "dino_teacher", ("teacher",), "backbone.", ("head.",), family="vit", strip=("module.",)
    ),
}
"""Detection order matters: the first layout whose state dict holds backbone keys wins."""

LAYOUTS: tuple[str, ...] = tuple(LAYOUT_SPECS)


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_backbone` loaded (log it next to results).

    Attributes:
        path: checkpoint path, None for a random init.
        layout: detected layout, or ``"random"``.
        arch: backbone architecture.
        sha256: hex digest of the checkpoint file, None for a random init.
        n_loaded_tensors: backbone tensors copied from the file.
        n_ignored_keys: keys of the file's state dict not loaded (heads, target encoders, layer4, fc).
        padding_mode: conv padding of the built backbone.
        seed: init seed (only meaningful for ``layout == "random"``).
        metadata: scalar top-level entries of the file (``epoch``, ``arch``, ``step`` ...).
    """

    path: str | None
    layout: str
    arch: str
    sha256: str | None
    n_loaded_tensors: int
    n_ignored_keys: int
    padding_mode: str = "zeros"
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view (for JSON / experiment tracking)."""
        return asdict(self)


def _sample(keys: list[str], n: int = _N_SHOWN) -> str:
    """``'a', 'b', ... (+k more)`` for error messages."""
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, streamed in ``chunk_size`` blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = b"\x80"


def _not_a_checkpoint(path: Path, head: bytes) -> CheckpointError:
    """The error for a file that is neither of torch.save's formats, saying what it looks like."""
    if not head:
        what = "it is empty (0 bytes)"
    else:
        printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in head) / len(head)
        looks = "text" if printable > 0.95 else "binary data of another format"
        what = f"it starts with {head[:16]!r} ({looks})"
    return CheckpointError(
        f"{path}: not a PyTorch checkpoint: torch.save writes a zip archive (or, before PyTorch 1.6, a "
        f"pickle), but {what}. Give the .pth/.pth.tar/.ckpt file the weights were saved in"
    )


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` a checkpoint onto the CPU, safely when possible.

    The file's first bytes are checked first: anything that is not one of ``torch.save``'s formats
    (a zip archive, or a legacy pickle) is refused with a message saying what was found. Then
    ``weights_only=True`` is tried with ``argparse.Namespace`` allow-listed; if the file pickles
    other objects, a warning is logged and it is reloaded with ``weights_only=False`` (trusted).

    Args:
        path: checkpoint file.

    Returns:
        The unpickled object (normally a dict).

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a readable torch checkpoint (the message names the file and
            what it holds, never a bare internal error).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(_ZIP_MAGIC):
        kind = "a zip archive"
    elif head.startswith(_PICKLE_PROTOCOL):
        kind = "a pickle"
    else:
        raise _not_a_checkpoint(path, head)
    unreadable = (
        f"{path}: {kind} that torch.load cannot read as a checkpoint (truncated or damaged file, or an "
        "archive written by another program)"
    )
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(unreadable) from exc
        logger.warning(
            "%s pickles objects beyond tensors; treating the file as TRUSTED and reloading it with "
            "weights_only=False, which runs arbitrary pickled code",
            path,
        )
    except Exception as exc:  # corrupt zip, truncated file ...
        raise CheckpointError(unreadable) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(unreadable) from exc


def _has_backbone_keys(state: Mapping[Any, Any], prefix: str, spec: LayoutSpec | None = None) -> bool:
    family = spec.family if spec is not None else "resnet"
    roots = tuple(prefix + r for r in _BACKBONE_ROOTS[family])
    keys = (spec.key(k) if spec is not None else k for k in state if isinstance(k, str))
    return any(k.startswith(roots) for k in keys)


def _find_state(obj: Mapping[Any, Any], spec: LayoutSpec) -> tuple[str | None, Mapping[str, Any]] | None:
    """The (container, state dict) of ``obj`` that holds ``spec``'s backbone keys, if any."""
    for container in spec.containers:
        state = obj if container is None else obj.get(container)
        if isinstance(state, Mapping) and _has_backbone_keys(state, spec.prefix, spec):
            return container, state
    return None


def _is_native(obj: Mapping[Any, Any]) -> bool:
    # The official FC trainer writes exactly model/optimizer/epoch/args; ours adds metadata.
    return obj.get("format") == NATIVE_FORMAT or bool(set(obj) - _OFFICIAL_SFC_TOP_KEYS)


def detect_layout(obj: Any, *, source: str = "<checkpoint object>") -> str:
    """Name the layout of an unpickled checkpoint (see the module docstring for the table).

    Args:
        obj: what ``torch.load`` returned.
        source: file name used in error messages.

    Returns:
        One of :data:`LAYOUTS`.

    Raises:
        CheckpointError: no layout matches; the message lists the layouts tried and sample keys.
    """
    if isinstance(obj, Mapping):
        for spec in LAYOUT_SPECS.values():
            if _find_state(obj, spec) is None:
                continue
            if spec.name == "sfc_native" and not _is_native(obj):
                continue
            if spec.name == "sfc_fc" and _is_native(obj):
                continue
            return spec.name
        top = [str(k) for k in obj]
        found = f"top-level keys ({len(top)}): {_sample(top)}"
        for inner in ("model", "state_dict", "teacher"):
            if isinstance(obj.get(inner), Mapping):
                keys = [str(k) for k in obj[inner]]
                found += f"; ['{inner}'] keys ({len(keys)}): {_sample(keys)}"
    else:
        found = f"an object of type {type(obj).__name__}, not a dict"
    tried = "\n  ".join(spec.describe() for spec in LAYOUT_SPECS.values())
    raise CheckpointError(f"{source}: unknown checkpoint layout. Layouts tried:\n  {tried}\nFound {found}")


def _guess_arch(keys: list[str]) -> str | None:
    """Guess the ResNet depth from (prefix-stripped) state-dict keys, or None."""
    blocks = [0, 0, 0]
    bottleneck = False
    for key in keys:
        match = re.match(r"layer([1-3])\.(\d+)\.(conv3\.)?", key)
        if match:
            i = int(match.group(1)) - 1
            blocks[i] = max(blocks[i], int(match.group(2)) + 1)
            bottleneck = bottleneck or match.group(3) is not None
    table = {
        (False, (2, 2, 2)): "resnet18",
        (False, (3, 4, 6)): "resnet34",
        (True, (3, 4, 6)): "resnet50",
        (True, (3, 4, 23)): "resnet101",
        (True, (3, 8, 36)): "resnet152",
    }
    return table.get((bottleneck, tuple(blocks)))  # type: ignore[arg-type]


def _guess_vit(state: Mapping[str, Any]) -> str | None:
    """Describe the ViT in (prefix-stripped) ``state`` (patch, width, depth, position grid), or None."""
    proj = state.get("patch_embed.proj.weight")
    if not isinstance(proj, torch.Tensor) or proj.dim() != 4:
        return None
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    text = f"a ViT with patch {proj.shape[-1]}, dim {proj.shape[0]}, depth {depth}"
    pos = state.get("pos_embed")
    if isinstance(pos, torch.Tensor) and pos.dim() == 3:
        side = math.isqrt(pos.shape[1] - 1)
        text += f", {side}x{side} position grid" if side * side == pos.shape[1] - 1 else ""
        for name, cfg in VIT_CONFIGS.items():
            if (proj.shape[-1], proj.shape[0], depth, side) == (cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.grid):
                text += f" ({name})"
    return text


def _select_backbone_state(
    state: Mapping[str, Any],
    spec: LayoutSpec,
    expected: Mapping[str, torch.Tensor],
    *,
    arch: str,
    source: str,
    where: str,
) -> tuple[dict[str, torch.Tensor], int]:
    """Strip the prefix, apply layout quirks, drop heads and check the keys against ``expected``.

    Returns:
        (state dict loadable with ``strict=True`` into the backbone, number of ignored keys).
    """
    prefix = spec.prefix
    dropped = _DROPPED_ROOTS[spec.family]
    picked: dict[str, Any] = {}
    unknown_outside: list[str] = []
    for key, value in state.items():
        key = spec.key(key)
        if not key.startswith(prefix):
            if not key.startswith(spec.head_prefixes):
                unknown_outside.append(key)
            continue
        name = key[len(prefix) :]
        if spec.name == "crw":
            renamed = _CRW_QUIRK.sub(r"\1\2.weight", name)
            if renamed != name:
                if prefix + renamed in state:
                    raise CheckpointError(
                        f"{source}: layout 'crw' holds both {key!r} and {prefix + renamed!r} for one conv"
                    )
                name = renamed
        if name.startswith(dropped):
            continue
        picked[name] = value
    if unknown_outside:
        logger.warning(
            "%s: ignoring %d keys outside the %s backbone that are not known heads: %s",
            source,
            len(unknown_outside),
            spec.name,
            _sample(unknown_outside),
        )

    missing = [k for k in expected if k not in picked and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in picked if k not in expected]
    mismatched = [
        f"{prefix}{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in picked.items()
        if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape
    ]
    not_tensors = [prefix + k for k, v in picked.items() if not isinstance(v, torch.Tensor)]
    if missing or unexpected or mismatched or not_tensors:
        stripped = f" after stripping {' / '.join(repr(x) for x in spec.strip)}" if spec.strip else ""
        lines = [
            f"{source}: layout '{spec.name}' (backbone keys {where}, "
            f"{f'prefix {prefix!r}' if prefix else 'no prefix'}{stripped}) does not match "
            f"{_FAMILY_DESCRIPTION[spec.family].format(arch=arch)}."
        ]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_sample([prefix + k for k in missing])}")
        if unexpected:
            lines.append(
                f"  unexpected keys ({len(unexpected)}): {_sample([prefix + k for k in unexpected])}"
            )
        if mismatched:
            lines.append(
                f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:_N_SHOWN])}"
                + (f"; ... (+{len(mismatched) - _N_SHOWN} more)" if len(mismatched) > _N_SHOWN else "")
            )
        if not_tensors:
            lines.append(f"  non-tensor values ({len(not_tensors)}): {_sample(not_tensors)}")
        if spec.family == "resnet":
            guess = _guess_arch(list(picked))
            if guess is not None and guess != arch:
                lines.append(f"  The checkpoint looks like a {guess}, but arch='{arch}' was requested.")
        elif (vit_guess := _guess_vit(picked)) is not None:
            lines.append(f"  The checkpoint looks like {vit_guess}; arch='{arch}' was requested.")
        raise CheckpointError("\n".join(lines))
    # Tolerated gap: keep the freshly built num_batches_tracked counters.
    loaded = dict(picked)
    for key in expected:
        loaded.setdefault(key, expected[key])
    return loaded, len(state) - len(picked)


def _scalar_metadata(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        return {}
    return {str(k): v for k, v in obj.items() if v is None or isinstance(v, (str, int, float, bool))}


ARCHS: tuple[str, ...] = (*FEATURE_DIMS, *VIT_CONFIGS)
"""Every architecture name :func:`load_backbone` accepts (ResNets, then ViTs)."""


def arch_family(arch: str | ViTConfig) -> Family:
    """``"resnet"`` or ``"vit"`` for an architecture name (or a :class:`ViTConfig`).

    Raises:
        ValueError: unknown name; the message lists :data:`ARCHS`.
    """
    if isinstance(arch, ViTConfig) or arch in VIT_CONFIGS:
        return "vit"
    if arch in FEATURE_DIMS:
        return "resnet"
    raise ValueError(f"unknown arch {arch!r}; supported: {list(ARCHS)}")


def load_backbone(
    arch: str | ViTConfig, checkpoint: str | Path | None, *, seed: int = 0
) -> tuple[Backbone, CheckpointInfo]:
    """Build the backbone for ``arch`` and load its weights from ``checkpoint``.

    Args:
        arch: ``"resnet18"`` / ``"resnet50"`` (stride 8), ``"vit_small_patch16"`` /
            ``"vit_small_patch8"`` (stride = patch size), or a :class:`~sfc.models.vit.ViTConfig`
            (e.g. a tiny test ViT).
        checkpoint: checkpoint file in any layout of :data:`LAYOUTS` that fits the arch's family
            (ResNet layouts for ResNets, ``dino`` / ``dino_teacher`` for ViTs), or None for a random init.
        seed: seed of the random init (the whole init when ``checkpoint`` is None; otherwise only the
            tensors tolerated as missing, i.e. ``num_batches_tracked``).

    Returns:
        (backbone in eval mode on CPU, :class:`CheckpointInfo`). Every backbone has ``arch``,
        ``feature_dim`` and ``stride`` attributes and maps (B, 3, H, W) ImageNet-normalised images to
        (B, feature_dim, ceil(H / stride), ceil(W / stride)) raw features.

    Raises:
        ValueError: unknown ``arch``.
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: unreadable file, unknown layout, a layout of the other family (ViT weights for
            a ResNet or the reverse), or keys/shapes that do not fit ``arch``.
    """
    family = arch_family(arch)
    vit_config = resolve_vit_config(arch) if family == "vit" else None
    name = vit_config.name if vit_config is not None else str(arch)

    def build(padding_mode: PaddingMode = "zeros") -> Backbone:
        if vit_config is not None:
            return build_vit(vit_config, seed=seed)
        return build_backbone(name, seed=seed, padding_mode=padding_mode)

    if checkpoint is None:
        model = build()
        model.eval()
        logger.info("Built %s backbone with random init (seed %s), no checkpoint", name, seed)
        return model, CheckpointInfo(None, "random", name, None, 0, 0, "zeros", seed)

    path = Path(checkpoint)
    obj = read_checkpoint(path)
    source = str(path)
    layout = detect_layout(obj, source=source)
    spec = LAYOUT_SPECS[layout]
    if spec.family != family:
        fits = [s.name for s in LAYOUT_SPECS.values() if s.family == family]
        raise CheckpointError(
            f"{source}: layout '{layout}' holds {'a ViT' if spec.family == 'vit' else 'a ResNet'} backbone, "
            f"but arch='{name}' (a {'ViT' if family == 'vit' else 'ResNet'}) was requested; "
            f"layouts for that arch: {fits}"
        )
    arch = name
    if layout == "sfc_native":
        saved_arch = obj.get("arch")
        if isinstance(saved_arch, str) and saved_arch != arch:
            raise CheckpointError(
                f"{source}: layout 'sfc_native' was saved for arch '{saved_arch}', but arch='{arch}' "
                "was requested"
            )
    found = _find_state(obj, spec)
    assert found is not None  # detect_layout guarantees it
    container, state = found
    where = "at the top level" if container is None else f"in ['{container}']"

    model = build(spec.padding_mode)
    weights, n_ignored = _select_backbone_state(
        state, spec, model.state_dict(), arch=arch, source=source, where=where
    )
    model.load_state_dict(weights, strict=True)
    model.eval()
    n_loaded = len(state) - n_ignored
    info = CheckpointInfo(
        path=source,
        layout=layout,
        arch=arch,
        sha256=file_sha256(path),
        n_loaded_tensors=n_loaded,
        n_ignored_keys=n_ignored,
        padding_mode=spec.padding_mode,
        seed=seed,
        metadata=_scalar_metadata(obj),
    )
    logger.info(
        "Loaded %d %s tensors from %s (layout %s, %d keys ignored, padding %s, sha256 %s)",
        n_loaded,
        arch,
        source,
        layout,
        n_ignored,
        spec.padding_mode,
        info.sha256[:12],
    )
    return model, info


def make_native_checkpoint(
    model_state: Mapping[str, torch.Tensor], *, arch: str, step: int | None = None, **metadata: Any
) -> dict[str, Any]:
    """Assemble the dict our FC trainer saves (layout ``sfc_native``; ``torch.save`` it).

    Args:
        model_state: state dict of the FC model with the official key names, i.e. the backbone under
            ``online_encoder.`` (plus, optionally, ``target_encoder.*``, projectors, ``predictor.*``).
        arch: backbone architecture, checked again at load time.
        step: training step.
        **metadata: further JSON-like entries (e.g. ``epoch``, ``config``); must not be named ``model``.

    Returns:
        ``{"format": "sfc_native", "arch": arch, "step": step, **metadata, "model": dict(model_state)}``.
    """
    if arch not in FEATURE_DIMS:
        raise ValueError(f"unknown arch {arch!r}; supported: {sorted(FEATURE_DIMS)}")
    if not _has_backbone_keys(model_state, LAYOUT_SPECS["sfc_native"].prefix):
        keys = [str(k) for k in model_state]
        raise ValueError(f"model_state has no 'online_encoder.' backbone keys; found: {_sample(keys)}")
    reserved = {"model", "format", "arch", "step"} & set(metadata)
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved")
    return {"format": NATIVE_FORMAT, "arch": arch, "step": step, **metadata, "model": dict(model_state)}
