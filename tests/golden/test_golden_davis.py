"""DAVIS-2017 J&F numbers and result tables equal the official davis2017-evaluation outputs.

One test per result set of ``davis_metrics/manifest.json``: the global and per-object numbers equal
the official ones (``expected.json``, full precision) to 1e-6, and the CSV tables we write equal the
official ``global_results-val.csv`` / ``per-sequence_results-val.csv`` (trailing whitespace aside).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfc.evaluation.davis.evaluate import evaluate_results, write_result_tables
from tests.golden.conftest import davis_set_params, golden_dir, load_manifest

TOL = 1e-6
GLOBAL_KEYS = ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")


def _lines(path: Path) -> list[bytes]:
    return [line.rstrip() for line in path.read_bytes().split(b"\n")]


@pytest.mark.parametrize("result_set", davis_set_params())
def test_davis_metrics_match_official(result_set: str | None, tmp_path: Path) -> None:
    root = golden_dir("davis_metrics")
    assert result_set is not None
    results = root / "results" / result_set
    expected = json.loads((results / "expected.json").read_text())
    manifest_numbers = load_manifest("davis_metrics")["sets"][result_set]

    global_dict, per_object = evaluate_results(
        davis_root=root / "gt", results_dir=results, split="val", workers=1, progress=False
    )

    for key in GLOBAL_KEYS:
        official = expected["global"][key]
        assert global_dict[key] == pytest.approx(official, abs=TOL), (
            f"{result_set} {key}: {global_dict[key]!r} vs {official!r}"
        )
        assert manifest_numbers[key] == pytest.approx(official, abs=TOL), (
            f"{result_set} {key}: manifest vs expected.json"
        )

    ours = {
        row.Sequence: (row.J, row.F)
        for row in per_object.rename(columns={"J-Mean": "J", "F-Mean": "F"}).itertuples()
    }
    assert sorted(ours) == sorted(expected["per_object"]), f"{result_set}: objects differ"
    for obj, official in expected["per_object"].items():
        assert ours[obj] == pytest.approx((official["J"], official["F"]), abs=TOL), (
            f"{result_set} {obj}: (J, F)"
        )

    for ours_csv, name in zip(
        write_result_tables(tmp_path, global_dict, per_object, "val"),
        ("global_results-val.csv", "per-sequence_results-val.csv"),
        strict=True,
    ):
        assert _lines(ours_csv) == _lines(results / name), (
            f"{result_set} {name}:\nours:\n{ours_csv.read_text()}\nofficial:\n{(results / name).read_text()}"
        )
