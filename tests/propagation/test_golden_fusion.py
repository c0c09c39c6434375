"""Conformance of late fusion + propagation with the official SFC code's ``prop_fusion.*`` golden cases.

The official ``test_vos.py`` fuses ``feats = normalize(cat((normalize(fc_feats) * lambd,
normalize(se_feats)), dim=1))`` and propagates ``feats``. A golden fusion case therefore holds the two
feature maps, ``lambda``, the first-frame labels, the propagation parameters and the expected output;
here the two maps go through :func:`sfc.fusion.late_fusion` and :func:`sfc.propagation.propagate`.

Files live in ``../shared/golden/propagation/`` (see ``tests/propagation/test_golden.py``, whose
discovery, array reading, layout detection and checking are imported, not copied). Skipped when that
folder or its ``prop_fusion*`` files are absent; when present, a case that cannot be understood FAILS
with a listing of what was found.

Fusion keys (case-insensitive; besides the keys of ``test_golden``): the fine-grained map
(``fc_feats``, ``feats_fc``, ``fine`` ...), the semantic map (``se_feats``, ``feats_se``, ``semantic``
...), the weight (``lambda``, ``lambd``, ``lam``; in the arrays or a JSON) and optionally the fused
features (``fused``, or ``feats`` / ``features`` next to the two maps), compared with ours in the
official channel order ``[fine, semantic]`` (either order accepted). Maps may be stored in any layout
``test_golden`` recognises ((T, C, h, w), (C, T, h, w), (T, h, w, C), a leading batch of 1); the
channel axis is the one where the two maps differ (all candidates are tried when their widths agree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sfc.fusion import late_fusion, official_channel_order
from sfc.propagation.reference import propagate_full
from tests.propagation.test_golden import (
    _ALL_ALIASES,
    ALIASES,
    ARRAY_SUFFIXES,
    FUSION_PREFIX,
    GOLDEN,
    SKIP_REASON,
    CaseSpec,
    _as_tensor,
    _listing,
    _scalar,
    _squeeze_batch,
    case_from_store,
    check_case,
    discover_cases,
    is_fusion_case,
    read_case_inputs,
    split_alias_suffix,
)

FUSION_ALIASES: dict[str, tuple[str, ...]] = {
    "fine": (
        "fc_feats", "feats_fc", "features_fc", "fc_features", "fc_feat", "fine", "fine_feats", "feats_fine",
        "features_fine", "fine_features", "ffeats",
    ),
    "semantic": (
        "se_feats", "feats_se", "features_se", "se_features", "se_feat", "semantic", "semantic_feats",
        "feats_semantic", "features_semantic", "semantic_features", "sem_feats", "feats_sem", "sfeats",
    ),
    "lambda": ("lambda", "lambd", "lam", "fusion_lambda", "fc_weight"),
    "fused": ("fused", "fused_feats", "feats_fused", "features_fused", "fused_features", "feats", "features"),
}
_FUSION_NPY_ALIASES = sorted({*_ALL_ALIASES, *(a for v in FUSION_ALIASES.values() for a in v)}, key=len, reverse=True)
CHANNEL_AXES = {"TCHW": 1, "CTHW": 0, "THWC": 3}  # of a 4-D map, batch dim squeezed
FUSED_ATOL = 1e-5


# ------------------------------------------------------------------------------------- discovery
def _npy_split(stem: str) -> tuple[str, str] | None:
    """``prop_fusion_fc_feats`` -> (``prop_fusion``, ``fc_feats``), fusion keys taken whole."""
    return split_alias_suffix(stem, _FUSION_NPY_ALIASES)


def fusion_specs(root: Path) -> list[CaseSpec]:
    """The ``prop_fusion*`` cases under ``root``: ``test_golden``'s cases, ``.npy`` groups re-split so
    that ``fc_feats`` / ``se_feats`` stay one key each (``test_golden`` would read them as ``feats``)."""
    specs, _ = discover_cases(root)
    groups: dict[str, CaseSpec] = {}
    for spec in (s for s in specs if is_fusion_case(s)):
        if spec.arrays[0].suffix.lower() in ARRAY_SUFFIXES:
            groups[spec.name] = spec
            continue
        for p in spec.arrays:
            prefix = (_npy_split(p.stem) or ("",))[0]
            folder = str(p.parent.relative_to(root))
            name = prefix if folder == "." else (f"{folder}/{prefix}" if prefix else folder)
            group = groups.setdefault(name, CaseSpec(name, []))
            group.arrays.append(p)
            group.jsons += [j for j in spec.jsons if j not in group.jsons]
    return sorted(groups.values(), key=lambda s: s.name)


# --------------------------------------------------------------------------------------- loading
def _pick(store: dict[str, Any], key: str) -> Any:
    return next((store[a] for a in FUSION_ALIASES[key] if a in store), None)


def _fuse_along(semantic: torch.Tensor, fine: torch.Tensor, lam: float, axis: int) -> torch.Tensor:
    """:func:`late_fusion` with channels on ``axis`` (result in the same layout, ours: [semantic, fine])."""
    fused = late_fusion(semantic.movedim(axis, -3), fine.movedim(axis, -3), lam)
    return fused.movedim(-3, axis)


def fusion_variants(spec: CaseSpec) -> list[tuple[str, Any, str]]:
    """Readings of a fusion case: (description, GoldenCase, fused-features report) per channel axis.

    Raises:
        ValueError: a key is missing or no channel axis fits both maps (the message lists the keys).
    """
    npy = [p for p in spec.arrays if p.suffix.lower() == ".npy"]
    store, params = read_case_inputs(CaseSpec(spec.name, [p for p in spec.arrays if p not in npy], spec.jsons))
    for p in npy:
        split = _npy_split(p.stem)
        store.setdefault(split[1] if split else p.stem.lower(), np.load(p, allow_pickle=False))
    found = f"keys found: arrays {sorted(store)}; parameters {sorted(params)}"
    fine_raw, semantic_raw = _pick(store, "fine"), _pick(store, "semantic")
    if fine_raw is None or semantic_raw is None:
        raise ValueError(
            f"a fusion case needs a fine-grained map (one of {FUSION_ALIASES['fine'][:4]} ...) and a semantic "
            f"map (one of {FUSION_ALIASES['semantic'][:4]} ...) ({found})"
        )
    lam = _scalar(_pick(params, "lambda"))
    lam = lam if lam is not None else _scalar(_pick(store, "lambda"))
    if lam is None:
        raise ValueError(f"no fusion weight (one of {FUSION_ALIASES['lambda']}) ({found})")
    fine = _squeeze_batch(_as_tensor(fine_raw), 4).to(torch.float32)
    semantic = _squeeze_batch(_as_tensor(semantic_raw), 4).to(torch.float32)
    if fine.dim() != 4 or semantic.dim() != 4:
        raise ValueError(f"maps of shapes {tuple(fine.shape)} / {tuple(semantic.shape)} are not 4-D ({found})")
    reference = _pick(store, "fused")
    consumed = {a for k in ("fine", "semantic", "lambda", "fused") for a in FUSION_ALIASES[k]}
    consumed |= {*ALIASES["features"], *ALIASES["features_q"], *ALIASES["normalize"]}
    rest = {k: v for k, v in store.items() if k not in consumed}

    variants = []
    for layout, axis in CHANNEL_AXES.items():
        others = [d for d in range(4) if d != axis]
        if [fine.shape[d] for d in others] != [semantic.shape[d] for d in others]:
            continue
        fused = _fuse_along(semantic, fine, lam, axis)
        report = "no fused features stored"
        if reference is not None:
            ref = _squeeze_batch(_as_tensor(reference), 4).to(torch.float32)
            official = official_channel_order(fused.movedim(axis, -3), semantic.shape[axis]).movedim(-3, axis)
            diffs = {
                order: (x - ref).abs().max().item() if x.shape == ref.shape else float("inf")
                for order, x in (("official [fine, semantic]", official), ("ours [semantic, fine]", fused))
            }
            order, diff = min(diffs.items(), key=lambda kv: kv[1])
            report = f"fused features vs stored: max abs diff {diff:.3g} in the {order} order (limit {FUSED_ATOL})"
            if diff > FUSED_ATOL:
                variants.append((f"channels on axis {axis} ({layout})", None, report))
                continue
        desc = f"channels on axis {axis} ({layout}), lambda {lam}"
        try:
            case = case_from_store(spec.name, {**rest, "features": fused}, params)
        except ValueError as exc:  # this reading of the layout does not fit the other arrays
            variants.append((desc, None, f"{report}; not readable: {exc}"))
            continue
        variants.append((desc, case, report))
    if not variants:
        raise ValueError(
            f"no channel axis fits both maps: fine {tuple(fine.shape)} vs semantic {tuple(semantic.shape)} ({found})"
        )
    return variants


def check_fusion_case(spec: CaseSpec) -> tuple[bool, str]:
    """Fuse, propagate and compare; (passed, report of every reading tried)."""
    reports = []
    for desc, case, fused_report in fusion_variants(spec):
        if case is None:
            reports.append(f"{spec.name} [{desc}]: {fused_report}")
            continue
        ok, report = check_case(case)
        reports.append(f"[{desc}; {fused_report}] {report}")
        if ok:
            return True, reports[-1]
    return False, "\n".join(reports)


# ------------------------------------------------------------------------------------- the tests
def _discover() -> tuple[list[CaseSpec], str | None]:
    if not GOLDEN.is_dir():
        return [], None
    try:
        return fusion_specs(GOLDEN), None
    except Exception as exc:  # reported by the test instead of breaking collection
        return [], f"{type(exc).__name__}: {exc}"


SPECS, DISCOVERY_ERROR = _discover()


@pytest.mark.parametrize("spec", SPECS or [None], ids=[s.name for s in SPECS] or ["none"])
def test_golden_fusion_case(spec: CaseSpec | None) -> None:
    if not GOLDEN.is_dir():
        pytest.skip(SKIP_REASON)
    if DISCOVERY_ERROR is not None:
        pytest.fail(f"reading ../shared/golden/propagation failed: {DISCOVERY_ERROR}; {_listing(GOLDEN)}")
    if spec is None:
        pytest.skip(f"no {FUSION_PREFIX}.* case in ../shared/golden/propagation: fusion conformance not checked")
    try:
        ok, report = check_fusion_case(spec)
    except Exception as exc:
        files = ", ".join(str(p.relative_to(GOLDEN)) for p in spec.arrays + spec.jsons)
        pytest.fail(f"fusion case {spec.name} ({files}) not understood: {exc}; {_listing(GOLDEN)}")
    assert ok, report


# --------------------------------------------- the loader itself, on synthetic golden folders
def _official_case(cf: int = 6, cs: int = 9, lam: float = 1.75) -> dict[str, Any]:
    """Official-layout arrays ((1, C, T, h, w) maps, (K, h, w) labels) and the official fusion's output."""
    gen = torch.Generator().manual_seed(0)
    T, h, w, K = 5, 6, 7, 3
    fc = torch.randn(1, cf, T, h, w, generator=gen)
    se = torch.randn(1, cs, T, h, w, generator=gen) * 4
    feats = F.normalize(torch.cat((F.normalize(fc, dim=1) * lam, F.normalize(se, dim=1)), dim=1), dim=1)
    labels = F.one_hot(torch.randint(0, K, (h, w), generator=gen), K).float()
    params = {"topk": 5, "temperature": 0.07, "radius": 2.5, "context": 2}
    expected = propagate_full(feats[0].permute(1, 0, 2, 3), labels, **params)
    return {"fc": fc, "se": se, "feats": feats, "labels": labels, "params": params, "expected": expected, "lam": lam}


def test_loader_reads_official_fusion_layouts(tmp_path: Path) -> None:
    c = _official_case()
    # 1. one npz with everything, official names and layouts, fused features included.
    np.savez(
        tmp_path / "prop_fusion.npz",
        fc_feats=c["fc"].numpy(),
        se_feats=c["se"].numpy(),
        feats=c["feats"].numpy(),
        lbls=c["labels"].permute(2, 0, 1).numpy(),
        expected=c["expected"][1:].numpy(),
        lambd=c["lam"],
        **c["params"],
    )
    # 2. a folder of .npy maps with equal channel counts ((T, C, h, w)), parameters in a JSON.
    e = _official_case(cf=5, cs=5, lam=0.5)
    (tmp_path / "prop_fusion_npy").mkdir()
    np.save(tmp_path / "prop_fusion_npy" / "fc_feats.npy", e["fc"][0].permute(1, 0, 2, 3).numpy())
    np.save(tmp_path / "prop_fusion_npy" / "se_feats.npy", e["se"][0].permute(1, 0, 2, 3).numpy())
    np.save(tmp_path / "prop_fusion_npy" / "first_labels.npy", e["labels"].numpy())
    np.save(tmp_path / "prop_fusion_npy" / "expected.npy", e["expected"].numpy())
    (tmp_path / "prop_fusion_npy" / "params.json").write_text(json.dumps({**e["params"], "lambda": 0.5}))
    specs = fusion_specs(tmp_path)
    assert [s.name for s in specs] == ["prop_fusion", "prop_fusion_npy"]
    for spec in specs:
        ok, report = check_fusion_case(spec)
        assert ok, report
    assert "official [fine, semantic] order" in check_fusion_case(specs[0])[1]


def test_loader_fails_a_wrong_lambda_or_wrong_fused_features(tmp_path: Path) -> None:
    c = _official_case()
    args = {
        "fc_feats": c["fc"].numpy(),
        "se_feats": c["se"].numpy(),
        "lbls": c["labels"].permute(2, 0, 1).numpy(),
        "expected": c["expected"].numpy(),
        **c["params"],
    }
    np.savez(tmp_path / "prop_fusion_a.npz", **args, lambd=0.3)  # expected was computed with 1.75
    np.savez(tmp_path / "prop_fusion_b.npz", **args, lambd=1.75, feats=c["feats"].numpy() * 0.9)
    a, b = fusion_specs(tmp_path)
    ok, report = check_fusion_case(a)
    assert not ok and "argmax agreement" in report
    ok, report = check_fusion_case(b)
    assert not ok and "fused features vs stored" in report


def test_loader_names_what_is_missing(tmp_path: Path) -> None:
    c = _official_case()
    np.savez(tmp_path / "prop_fusion.npz", fc_feats=c["fc"].numpy(), expected=c["expected"].numpy(), **c["params"])
    (spec,) = fusion_specs(tmp_path)
    with pytest.raises(ValueError, match=r"semantic map .*fc_feats"):
        check_fusion_case(spec)
    np.savez(tmp_path / "prop_fusion.npz", fc_feats=c["fc"].numpy(), se_feats=c["se"].numpy(), **c["params"])
    with pytest.raises(ValueError, match="no fusion weight"):
        check_fusion_case(spec)
