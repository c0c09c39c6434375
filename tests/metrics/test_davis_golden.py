"""Conformance of ``sfc davis-eval`` numbers with the official ``davis2017-evaluation`` golden outputs.

The golden data live outside the repository, in ``../shared/golden/davis_metrics/`` relative to the
repo root. When that folder is absent the test is skipped. When it is present its layout must be
recognised, otherwise the test FAILS and lists what it found (it never skips silently).

Recognised layout (best effort, searched recursively): every official output file
``global_results-<split>.csv`` marks one case. Its folder is the results folder (the official evaluator
writes its CSVs next to the sequence folders) unless a sibling ``results/`` folder holds the sequence
folders. The DAVIS root is the nearest folder, searched from the CSV's folder upwards to the golden
root, that contains ``ImageSets/2017/<split>.txt`` (directly or in a child folder such as ``davis/``
or ``DAVIS/``). Our tables must equal the official CSVs when written with the official ``%.3f``
formatting; ``per-sequence_results-<split>.csv`` is compared too when present, and an optional
``expected.json`` / ``*.json`` with full-precision numbers (official column names or the
``JF_mean``-style keys) is compared to 1e-6.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from sfc.davis_eval import CSV_FLOAT_FORMAT, evaluate_results
from sfc.metrics.davis import GLOBAL_COLUMNS, GLOBAL_KEYS, global_table

GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "golden" / "davis_metrics"
SKIP_REASON = "../shared/golden/davis_metrics not present: conformance with davis2017-evaluation not checked"


def _listing(root: Path, limit: int = 60) -> str:
    entries = sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))
    shown = "\n  ".join(entries[:limit])
    more = f"\n  ... ({len(entries) - limit} more)" if len(entries) > limit else ""
    readme = next((p for p in root.glob("README*") if p.is_file()), None)
    head = ""
    if readme is not None:
        head = "\nREADME starts with:\n" + "\n".join(readme.read_text(errors="replace").splitlines()[:20])
    return f"found under {root}:\n  {shown or '(nothing)'}{more}{head}"


def _find_davis_root(start: Path, split: str) -> Path | None:
    for folder in [start, *start.parents]:
        for candidate in [folder, *(p for p in sorted(folder.iterdir()) if p.is_dir())]:
            if (candidate / "ImageSets" / "2017" / f"{split}.txt").is_file():
                return candidate
        if folder == GOLDEN:
            break
    return None


def _discover_cases() -> list[dict]:
    cases = []
    for csv in sorted(GOLDEN.rglob("global_results-*.csv")):
        split = csv.stem[len("global_results-") :]
        folder = csv.parent
        results = folder / "results" if (folder / "results").is_dir() else folder
        davis_root = _find_davis_root(folder, split)
        if davis_root is None:
            continue
        per_seq = folder / f"per-sequence_results-{split}.csv"
        jsons = sorted(folder.glob("*.json"))
        cases.append(
            {
                "id": str(csv.relative_to(GOLDEN)),
                "split": split,
                "results": results,
                "davis_root": davis_root,
                "global_csv": csv,
                "per_sequence_csv": per_seq if per_seq.is_file() else None,
                "json": jsons[0] if jsons else None,
            }
        )
    return cases


def _full_precision(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "global" in data and isinstance(data["global"], dict):
        data = data["global"]
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, col in zip(GLOBAL_KEYS, GLOBAL_COLUMNS, strict=True):
            for name in (key, col):
                if isinstance(data.get(name), int | float):
                    out[key] = float(data[name])
    return out


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().splitlines())


def test_golden_davis_metrics() -> None:
    if not GOLDEN.is_dir():
        pytest.skip(SKIP_REASON)
    cases = _discover_cases()
    if not cases:
        pytest.fail(
            "../shared/golden/davis_metrics exists but its layout is not recognised (expected "
            "global_results-<split>.csv files next to a results folder, and a DAVIS root with "
            f"ImageSets/2017/<split>.txt above them); {_listing(GOLDEN)}"
        )
    failures = []
    for case in cases:
        global_dict, per_object = evaluate_results(
            case["davis_root"], case["results"], split=case["split"], workers=os.cpu_count(), progress=False
        )
        ours = global_table(global_dict).to_csv(
            index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n"
        )
        theirs = case["global_csv"].read_text()
        if _normalise(ours) != _normalise(theirs):
            failures.append(f"{case['id']}: global table differs\nours:\n{ours}\nofficial:\n{theirs}")
        if case["per_sequence_csv"] is not None:
            ours_seq = per_object.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")
            theirs_seq = case["per_sequence_csv"].read_text()
            if _normalise(ours_seq) != _normalise(theirs_seq):
                a = pd.read_csv(io.StringIO(ours_seq))
                b = pd.read_csv(case["per_sequence_csv"])
                diff = a.merge(b, on="Sequence", how="outer", suffixes=("_ours", "_official"))
                failures.append(f"{case['id']}: per-sequence table differs\n{diff.to_string(index=False)}")
        if case["json"] is not None:
            for key, expected in _full_precision(case["json"]).items():
                if abs(global_dict[key] - expected) > 1e-6:
                    failures.append(f"{case['id']}: {key} = {global_dict[key]!r}, official {expected!r}")
    assert not failures, "\n\n".join(failures)
