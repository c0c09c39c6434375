"""Readers of the golden outputs of the official code, and the comparisons the golden tests share.

The golden outputs of the official SFC / CRW / davis2017-evaluation code are stored beside the
repository in ``../shared/golden`` (present in CI). Their layout is fixed and documented in
``../shared/golden/README.md``; the readers below read exactly the documented keys.

When a golden folder is missing, a test that needs it is skipped, except when the environment
variable ``CI`` is ``true`` (case-insensitive): there the goldens must be present, so the test fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

GOLDEN: Path = Path(
    os.environ.get("SFC_GOLDEN") or Path(__file__).resolve().parents[2].parent / "shared" / "golden"
)
"""``<repo>/../shared/golden``, or ``$SFC_GOLDEN`` (a copy elsewhere, e.g. on a GPU machine)."""

FUSION_CASE = "fusion"
"""Name of the propagation case of fused features (checked by ``test_golden_fusion.py``)."""

REALISTIC_CASE = "realistic"
"""Name of the DAVIS-size propagation case (too big for the full-affinity reference)."""


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``), where the goldens are present."""
    return os.environ.get("CI", "").lower() == "true"


def golden_dir(name: str) -> Path:
    """The golden subfolder ``name`` (e.g. ``propagation``); skips the test when it is missing, or
    fails it in CI."""
    path = GOLDEN / name
    if not path.is_dir():
        message = f"golden outputs of the official code not found: {path} is missing"
        if in_ci():
            pytest.fail(f"{message} (they are present in CI: CI=true)")
        pytest.skip(f"{message}; conformance with the official code not checked")
    return path


def load_manifest(name: str) -> dict[str, Any]:
    """``manifest.json`` of the golden subfolder ``name``."""
    return json.loads((golden_dir(name) / "manifest.json").read_text())


def _params(name: str, ids_and_values: Callable[[dict[str, Any]], list[tuple[str, Any]]]) -> list[Any]:
    """``pytest.param`` list for collection-time parametrization, or one ``None`` placeholder (the test
    then calls :func:`golden_dir`, which skips or fails) when the folder is missing."""
    if not (GOLDEN / name / "manifest.json").is_file():
        return [pytest.param(None, id=f"{name}-missing")]
    return [pytest.param(value, id=id_) for id_, value in ids_and_values(load_manifest(name))]


def propagation_params(exclude: tuple[str, ...] = ()) -> list[Any]:
    """Manifest entries of ``propagation/`` (ids = case names) other than the cases in ``exclude``."""
    return _params(
        "propagation",
        lambda manifest: [(e["name"], e) for e in manifest["cases"] if e["name"] not in exclude],
    )


def davis_set_params() -> list[Any]:
    """Result set names of ``davis_metrics/manifest.json``."""
    return _params("davis_metrics", lambda manifest: [(s, s) for s in manifest["sets"]])


@dataclass
class GoldenCase:
    """One propagation case: manifest entry and arrays of its ``.npz``.

    ``features`` is (T, C, h, w) float32 L2-normalised over C (built from the low-rank factors for
    ``realistic``; None for ``fusion``, whose raw maps are in ``fc_features`` / ``semantic_features``).
    """

    name: str
    entry: dict[str, Any]
    params: dict[str, float | int]
    first_labels: np.ndarray
    expected: np.ndarray
    features: np.ndarray | None = None
    fc_features: np.ndarray | None = None
    semantic_features: np.ndarray | None = None
    fused_features: np.ndarray | None = None

    @property
    def topk(self) -> int:
        return int(self.entry["topk"])

    @property
    def temperature(self) -> float:
        return float(self.entry["temperature"])

    @property
    def radius(self) -> float:
        return float(self.entry["radius"])

    @property
    def context(self) -> int:
        return int(self.entry["context"])

    @property
    def lam(self) -> float:
        return float(self.entry["lambda"])


def lowrank_features(b: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(T, C, h, w) features of ``realistic``: L2-normalise over C of ``B.int32 @ Z.int32`` in float32."""
    r, T, h, w = z.shape
    product = b.astype(np.int32) @ z.reshape(r, -1).astype(np.int32)  # (C, T*h*w)
    feats = torch.from_numpy(product.astype(np.float32)).view(b.shape[0], T, h, w)
    return F.normalize(feats, dim=0).permute(1, 0, 2, 3).contiguous().numpy()


def load_case(entry: dict[str, Any]) -> GoldenCase:
    """Read the ``.npz`` of a ``propagation/manifest.json`` entry."""
    with np.load(golden_dir("propagation") / entry["file"], allow_pickle=False) as npz:
        param_keys = ["topk", "temperature", "radius", "context"] + (["lambda"] if "lambda" in entry else [])
        case = GoldenCase(
            name=entry["name"],
            entry=entry,
            params={key: npz[key].item() for key in param_keys},
            first_labels=npz["first_labels"],
            expected=npz["expected"],
        )
        if entry["name"] == FUSION_CASE:
            case.fc_features = npz["fc_features"]
            case.semantic_features = npz["semantic_features"]
            case.fused_features = npz["fused_features"]
        elif entry["name"] == REALISTIC_CASE:
            case.features = lowrank_features(npz["features_lowrank_B"], npz["features_lowrank_Z"])
        else:
            case.features = npz["features"]
    return case


def load_named_case(name: str) -> GoldenCase:
    """The propagation case called ``name``."""
    (entry,) = [e for e in load_manifest("propagation")["cases"] if e["name"] == name]
    return load_case(entry)


def assert_params_match(case: GoldenCase) -> None:
    """The manifest's parameters equal the 0-d arrays of the ``.npz``."""
    for key, value in case.params.items():
        assert case.entry[key] == value, f"{case.name}: manifest {key}={case.entry[key]!r}, npz {value!r}"


def assert_matches_expected(case: GoldenCase, ours: torch.Tensor, what: str) -> tuple[float, float]:
    """Check (T, h, w, K) soft maps against ``expected`` with the manifest's tolerances.

    ``atol`` bounds the max abs difference over all frames (when not null); the argmax over K must
    agree with the official one on at least ``min_argmax_agreement`` of the pixels of frames 1..T-1.

    Returns:
        (max abs difference, argmax agreement).
    """
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == case.expected.shape, (
        f"{case.name} ({what}): shape {ours_np.shape} != {case.expected.shape}"
    )
    max_diff = float(np.abs(ours_np - case.expected).max())
    agreement = float((ours_np[1:].argmax(-1) == case.expected[1:].argmax(-1)).mean())
    atol, min_agreement = case.entry["atol"], case.entry["min_argmax_agreement"]
    measured = f"{case.name} ({what}): max abs diff {max_diff:.3g} (atol {atol}), argmax agreement {agreement:.6f} (min {min_agreement})"
    assert atol is None or max_diff <= atol, measured
    assert agreement >= min_agreement, measured
    return max_diff, agreement


# ------------------------------------------------------------------------------------------------ VIP
def load_npz(name: str, file: str) -> dict[str, np.ndarray]:
    """Every array of ``<golden>/<name>/<file>`` (an ``.npz``), loaded into memory."""
    with np.load(golden_dir(name) / file, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


# ------------------------------------------------------------------------------- JHMDB PCK (pck/)
REALDATA: Path = GOLDEN.parent / "realdata"
"""``<repo>/../shared/realdata``: the real clips some goldens were computed on."""


def realdata_dir(name: str) -> Path:
    """The real-data subfolder ``name`` (e.g. ``jhmdb``); skips the test when it is missing, or fails
    it in CI (like :func:`golden_dir`)."""
    path = REALDATA / name
    if not path.is_dir():
        message = f"real data of the golden cases not found: {path} is missing"
        if in_ci():
            pytest.fail(f"{message} (it is present in CI: CI=true)")
        pytest.skip(message)
    return path


def pck_params(section: str, exclude: tuple[str, ...] = ()) -> list[Any]:
    """Case names of ``pck/manifest.json`` under ``section`` (``clips``, ``decode`` or ``eval``), other
    than those in ``exclude``."""
    return _params("pck", lambda manifest: [(name, name) for name in manifest[section] if name not in exclude])


def load_pck_npz(file: str) -> dict[str, np.ndarray]:
    """Every array of one ``.npz`` of ``pck/`` (read without pickles)."""
    return load_npz("pck", file)
