"""Tests of the ``sfc`` command line (``sfc davis-eval`` on a tiny generated DAVIS root, ``sfc show-metrics``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from sfc.cli import cli, main

SEQUENCES = {"bear": (5, 40, 60), "kite": (6, 32, 48)}  # name -> (frames, height, width)

# `python evaluation_method.py --task semi-supervised --set val` of davis2017-evaluation (commit
# ac7c43f) on the dataset written by _make_dataset(): its two CSV files, byte for byte.
OFFICIAL_GLOBAL_CSV = (
    "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.724,0.750,1.000,0.099,0.698,0.889,0.243\n"
)
OFFICIAL_PER_SEQUENCE_CSV = (
    "Sequence,J-Mean,F-Mean\nbear_1,0.820,0.778\nbear_2,0.671,0.585\nkite_1,0.758,0.731\n"
)


def _palette() -> list[int]:
    """The PASCAL/DAVIS colour map (id i -> RGB), built from the bits of i."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - j)
            c >>= 3
        pal[i] = rgb
    return pal.flatten().tolist()


def _save_png(path: Path, ids: np.ndarray) -> None:
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _make_dataset(tmp: Path) -> tuple[Path, Path]:
    """Write a DAVIS root and a results folder; deterministic (no RNG)."""
    root, results = tmp / "davis", tmp / "results"
    for seq, (t_len, h, w) in SEQUENCES.items():
        for t in range(t_len):
            stem = f"{t:05d}"
            frame = root / "JPEGImages" / "480p" / seq / f"{stem}.jpg"
            frame.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((h, w, 3), 40 * t, np.uint8)).save(frame)
            gt = np.zeros((h, w), np.uint8)
            pred = np.zeros((h, w), np.uint8)
            gt[_ellipse(h, w, h / 2, w / 3 + t, h / 4, w / 6)] = 1
            pred[_ellipse(h, w, h / 2 + 1, w / 3 + 1.5 * t, h / 4, w / 6 + 1)] = 1
            if seq == "bear":
                gt[_ellipse(h, w, h / 4, 3 * w / 4 - t, h / 6, w / 8)] = 2
                pred[_ellipse(h, w, h / 4 + t, 3 * w / 4 - t, h / 7, w / 8)] = 2
                gt[h - 2 :, :] = 255  # void strip
            _save_png(root / "Annotations" / "480p" / seq / f"{stem}.png", gt)
            _save_png(results / seq / f"{stem}.png", pred)
    split = root / "ImageSets" / "2017" / "val.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("\n".join(SEQUENCES) + "\n")
    return root, results


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    return _make_dataset(tmp_path)


def _run(root: Path, results: Path, *extra: str) -> int:
    return main(["davis-eval", "--davis-root", str(root), "--results", str(results), "--no-progress", *extra])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_davis_eval_writes_official_csvs(
    dataset: tuple[Path, Path], workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = dataset
    assert _run(root, results, "--workers", workers) == 0
    global_csv = results / "global_results-val.csv"
    per_seq_csv = results / "per-sequence_results-val.csv"
    assert global_csv.read_text() == OFFICIAL_GLOBAL_CSV
    assert per_seq_csv.read_text() == OFFICIAL_PER_SEQUENCE_CSV
    table_g = pd.read_csv(global_csv)
    assert list(table_g.columns) == [
        "J&F-Mean",
        "J-Mean",
        "J-Recall",
        "J-Decay",
        "F-Mean",
        "F-Recall",
        "F-Decay",
    ]
    table_seq = pd.read_csv(per_seq_csv)
    assert list(table_seq.columns) == ["Sequence", "J-Mean", "F-Mean"]
    assert table_seq["Sequence"].tolist() == ["bear_1", "bear_2", "kite_1"]
    out = capsys.readouterr().out
    assert "Global results for val" in out and "J&F-Mean" in out and "kite_1" in out
    assert not list(results.glob("*.tmp"))  # atomic writes leave no temporary file behind


def test_davis_eval_sequence_subset(dataset: tuple[Path, Path]) -> None:
    root, results = dataset
    assert _run(root, results, "--sequences", "kite", "--workers", "1") == 0
    table_seq = pd.read_csv(results / "per-sequence_results-val.csv")
    assert table_seq["Sequence"].tolist() == ["kite_1"]


def test_davis_eval_first_and_last_results_frames_optional(dataset: tuple[Path, Path]) -> None:
    root, results = dataset
    (results / "kite" / "00000.png").unlink()  # the given first frame is never read
    (results / "kite" / "00005.png").unlink()  # nor the last one
    assert _run(root, results, "--workers", "1") == 0
    assert (results / "global_results-val.csv").read_text() == OFFICIAL_GLOBAL_CSV


def test_davis_eval_missing_results_frame_exits_2(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = dataset
    missing = results / "bear" / "00002.png"
    missing.unlink()
    assert _run(root, results, "--workers", "2") == 2
    err = capsys.readouterr().err
    assert str(missing) in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (results / "global_results-val.csv").exists()


def test_davis_eval_missing_sequence_folder_exits_2(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = dataset
    for png in (results / "kite").iterdir():
        png.unlink()
    (results / "kite").rmdir()
    assert _run(root, results) == 2
    assert str(results / "kite") in capsys.readouterr().err


def test_davis_eval_bad_results_exit_2(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = dataset
    rgb = results / "kite" / "00003.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(rgb)  # RGB instead of palette
    assert _run(root, results, "--workers", "1") == 2
    assert str(rgb) in capsys.readouterr().err

    _save_png(rgb, np.full((32, 48), 2, np.uint8))  # id 2 but kite has a single object
    assert _run(root, results, "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "object id 2" in err and str(results / "kite") in err


def test_davis_eval_unknown_split_exits_2(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = dataset
    assert _run(root, results, "--split", "nope") == 2
    assert "nope.txt" in capsys.readouterr().err


def test_cli_usage_errors() -> None:
    assert main([]) == 2
    assert main(["davis-eval"]) == 2  # missing required options
    assert main(["--help"]) == 0


# ---------------------------------------------------------------------------------------- show-metrics

METRICS = {
    "JF_mean": 0.5,
    "J_mean": 0.55,
    "J_recall": 0.6,
    "J_decay": -0.01,
    "F_mean": 0.45,
    "F_recall": 0.4,
    "F_decay": 0.02,
}


def test_show_metrics_prints_every_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**METRICS, "note": "text values are printed as they are"}))
    assert main(["show-metrics", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "make ui" in out
    lines = out.splitlines()
    for key, value in METRICS.items():
        assert any(line.split() == [key, f"{value:.4f}"] for line in lines), key
    assert any(line.split()[:1] == ["note"] and "as they are" in line for line in lines)


def test_show_metrics_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "metrics.json"
    assert main(["show-metrics", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err and err.count("\n") == 1


def test_kedro_click_group_forwards_to_main(tmp_path: Path) -> None:
    """Kedro loads `sfc.cli.cli` (a click group) to add project commands: `kedro show-metrics ...`."""
    assert isinstance(cli, click.Group)
    assert {"davis-eval", "show-metrics"} <= set(cli.commands)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(METRICS))
    result = CliRunner().invoke(cli, ["show-metrics", str(path)])
    assert result.exit_code == 0 and "JF_mean" in result.output
    result = CliRunner().invoke(cli, ["show-metrics", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["davis-eval", "--help"])  # options reach argparse untouched
    assert result.exit_code == 0 and "--davis-root" in result.output
