"""Nodes of ``evaluate_davis`` called as plain functions on the ``tiny_davis`` fixture.

One propagation of the whole fixture is computed per module (``predictions``) and written once
through :class:`MaskResultsDataset` (``written``); the other tests reuse them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from kedro.io import DatasetError
from matplotlib.figure import Figure
from PIL import Image

from sfc.config import ConfigError
from sfc.datasets.gif_folder import GifFolderDataset
from sfc.datasets.mask_results import RUN_INFO, MaskResults, MaskResultsDataset
from sfc.evaluation.davis.evaluate import FramePrediction
from sfc.evaluation.davis.metric import GLOBAL_KEYS, PER_OBJECT_COLUMNS
from sfc.evaluation.davis.reader import (
    ANNOTATIONS_DIR,
    DavisFormatError,
    annotation_path,
    list_frames,
    load_sequence,
    onehot,
    read_mask,
)
from sfc.pipelines.evaluate_davis.nodes import (
    predict_davis,
    render_correspondence,
    render_davis_videos,
    render_overlays,
    score_davis,
)
from sfc.pipelines.shared import select_davis_sequences as select_sequences
from sfc.propagation.labels import downsample_labels, upsample_argmax
from tests.pipelines.evaluate_davis import (
    BACKBONE,
    FUSION,
    N_FRAMES,
    PROPAGATION,
    RUNTIME,
    SEMANTIC,
    SEQUENCES,
    davis_params,
)

STRIDE = 8  # backbone output stride (layer4 removed)


def _predict(root: Path, **davis_overrides) -> Iterator[FramePrediction]:
    davis = davis_params(root, **davis_overrides)
    return predict_davis(select_sequences(davis), davis, BACKBONE, SEMANTIC, FUSION, PROPAGATION, RUNTIME)


def _tmp_files(folder: Path) -> list[str]:
    return [name for _, _, files in os.walk(folder) for name in files if name.endswith(".tmp")]


@pytest.fixture(scope="module")
def predictions(tiny_davis: Path) -> list[FramePrediction]:
    return list(_predict(tiny_davis))


@pytest.fixture(scope="module")
def written(tiny_davis: Path, tmp_path_factory: pytest.TempPathFactory) -> MaskResults:
    """The fixture's predictions saved through the dataset (streamed, as the pipeline does)."""
    dataset = MaskResultsDataset(path=str(tmp_path_factory.mktemp("results") / "davis"))
    dataset.save(_predict(tiny_davis))
    return dataset.load()


# ------------------------------------------------------------------------------------ select_sequences


def test_select_sequences_split_order_and_subset(tiny_davis: Path) -> None:
    assert select_sequences(davis_params(tiny_davis)) == SEQUENCES
    assert select_sequences(davis_params(tiny_davis, sequences=["demo-01"])) == ["demo-01"]


def test_select_sequences_unknown_sequence_named(tiny_davis: Path) -> None:
    with pytest.raises(DavisFormatError, match="'no-such-seq'"):
        select_sequences(davis_params(tiny_davis, sequences=["demo-00", "no-such-seq"]))


@pytest.mark.parametrize("max_frames", [0, 2])
def test_select_sequences_rejects_too_few_frames(tiny_davis: Path, max_frames: int) -> None:
    with pytest.raises(ConfigError, match="davis.max_frames: must be >= 3"):
        select_sequences(davis_params(tiny_davis, max_frames=max_frames))


@pytest.mark.parametrize("scale", [0.0, -0.5])
def test_select_sequences_rejects_non_positive_scale(tiny_davis: Path, scale: float) -> None:
    with pytest.raises(ConfigError, match="davis.scale: must be > 0"):
        select_sequences(davis_params(tiny_davis, scale=scale))


def test_select_sequences_missing_first_annotation_named(tiny_davis: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_davis, tmp_path / "davis"))
    missing = annotation_path(root, "demo-01", "00000")
    missing.unlink()
    with pytest.raises(DavisFormatError) as info:
        select_sequences(davis_params(root))
    assert str(missing) in str(info.value)


def test_select_sequences_checks_every_annotation_before_any_work(tiny_davis: Path, tmp_path: Path) -> None:
    """An RGB PNG at frame 4 fails at selection, naming the file, not after the propagation."""
    root = Path(shutil.copytree(tiny_davis, tmp_path / "davis"))
    bad = annotation_path(root, "demo-01", "00004")
    Image.open(bad).convert("RGB").save(bad)
    with pytest.raises(DavisFormatError, match=r"demo-01/00004\.png: expected a palette .*found mode 'RGB'"):
        select_sequences(davis_params(root))
    bad.unlink()
    with pytest.raises(DavisFormatError, match=r"00004\.png: annotation of frame '00004' .* not found"):
        select_sequences(davis_params(root))
    # a frame beyond davis.max_frames is not needed, so not checked
    assert select_sequences(davis_params(root, max_frames=4)) == SEQUENCES


def test_unknown_parameter_key_is_named(tiny_davis: Path) -> None:
    with pytest.raises(ConfigError, match=r"davis\.scal: unknown parameter; davis takes: max_frames, root, scale"):
        select_sequences({**davis_params(tiny_davis), "scal": 0.5})


# ------------------------------------------------------------------------------------ predict_davis


def test_predict_davis_is_lazy(tiny_davis: Path, tmp_path: Path) -> None:
    """Frames are read while iterating, not when the node returns (the dataset streams them)."""
    root = Path(shutil.copytree(tiny_davis, tmp_path / "davis"))
    preds = _predict(root)
    assert isinstance(preds, Iterator)
    shutil.rmtree(root / "JPEGImages" / "480p" / "demo-01")  # gone after the node returned
    with pytest.raises(DavisFormatError, match="demo-01"):
        list(preds)


def test_predict_davis_one_valid_prediction_per_frame(
    tiny_davis: Path, predictions: list[FramePrediction]
) -> None:
    expected = [(seq, frame) for seq in SEQUENCES for frame in list_frames(tiny_davis, seq)]
    assert [(p.sequence, p.frame) for p in predictions] == expected
    assert len(predictions) == len(SEQUENCES) * N_FRAMES
    for pred in predictions:
        gt = read_mask(annotation_path(tiny_davis, pred.sequence, pred.frame))
        assert pred.mask.shape == gt.shape and pred.mask.dtype == np.uint8
        valid = {0, *load_sequence(tiny_davis, pred.sequence).object_ids}
        assert set(np.unique(pred.mask).tolist()) <= valid, (pred.sequence, pred.frame)


def test_predict_davis_deterministic(tiny_davis: Path, predictions: list[FramePrediction]) -> None:
    again = list(_predict(tiny_davis))
    assert len(again) == len(predictions)
    for a, b in zip(predictions, again, strict=True):
        assert (a.sequence, a.frame) == (b.sequence, b.frame)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_predict_davis_frame0_is_resampled_annotation(
    tiny_davis: Path, predictions: list[FramePrediction]
) -> None:
    """Frame 0 = the first annotation resized to the stride-8 grid and back (CRW protocol).

    At 64x96 the grid is only 8x12 cells, so small objects lose a lot (per-object IoU 0.27-0.73
    here): frame 0 matches its resampling exactly, and the ground truth only roughly.
    """
    for seq in SEQUENCES:
        pred = next(p for p in predictions if p.sequence == seq)
        assert pred.frame == list_frames(tiny_davis, seq)[0]
        sequence = load_sequence(tiny_davis, seq)
        gt = sequence.first_mask
        h, w = gt.shape
        soft = downsample_labels(
            torch.from_numpy(onehot(gt, sequence.object_ids)), (h // STRIDE, w // STRIDE)
        )
        ids = np.array([0, *sequence.object_ids], np.uint8)
        np.testing.assert_array_equal(pred.mask, ids[upsample_argmax(soft, (h, w)).numpy()])
        assert (pred.mask == gt).mean() > 0.85
        ious = [
            ((pred.mask == i) & (gt == i)).sum() / ((pred.mask == i) | (gt == i)).sum()
            for i in sequence.object_ids
        ]
        assert min(ious) > 0.2 and np.mean(ious) > 0.5, ious


def test_predict_davis_max_frames(tiny_davis: Path) -> None:
    preds = list(_predict(tiny_davis, max_frames=3, sequences=["demo-01"]))
    assert [(p.sequence, p.frame) for p in preds] == [
        ("demo-01", f) for f in list_frames(tiny_davis, "demo-01")[:3]
    ]


# ------------------------------------------------------------------------------------ MaskResultsDataset


def test_results_dataset_round_trip(predictions: list[FramePrediction], written: MaskResults) -> None:
    for pred in predictions:
        np.testing.assert_array_equal(
            read_mask(written.path / pred.sequence / f"{pred.frame}.png"), pred.mask
        )
    assert sorted(p.name for p in written.path.iterdir()) == sorted([*SEQUENCES, RUN_INFO])
    assert written.info == json.loads((written.path / RUN_INFO).read_text())
    assert written.info["sequences"] == {seq: N_FRAMES for seq in SEQUENCES}
    assert written.info["frames"] == len(SEQUENCES) * N_FRAMES
    assert written.info["seconds"] >= 0 and written.info["frames_per_second"] > 0
    assert not _tmp_files(written.path)  # atomic writes: no temporary file left behind


def test_results_dataset_removes_stale_pngs(tmp_path: Path, predictions: list[FramePrediction]) -> None:
    dataset = MaskResultsDataset(path=str(tmp_path / "res"))
    assert not dataset.exists()
    stale = [tmp_path / "res" / "demo-00" / "99999.png", tmp_path / "res" / "demo-00" / "00003.png"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old run")
    dataset.save(p for p in predictions if p.sequence == "demo-00" and p.frame <= "00002")
    assert dataset.exists()
    assert sorted(p.name for p in (tmp_path / "res" / "demo-00").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert dataset.load().info["sequences"] == {"demo-00": 3}


def test_results_dataset_crashed_save(tmp_path: Path, predictions: list[FramePrediction]) -> None:
    """A save that dies mid-way leaves no temporary file and no run_info.json (so exists() is False)."""
    dataset = MaskResultsDataset(path=str(tmp_path / "res"))
    dataset.save(iter(predictions))
    assert dataset.exists()

    def crashing() -> Iterator[FramePrediction]:
        yield predictions[0]
        raise RuntimeError("out of memory")

    with pytest.raises(DatasetError, match="out of memory"):  # Kedro wraps the generator's error
        dataset.save(crashing())
    assert not _tmp_files(tmp_path)
    assert not dataset.exists()  # the folder now mixes two runs: it must not look complete


def test_results_dataset_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        MaskResultsDataset(path=str(tmp_path / "nope")).load()


# ------------------------------------------------------------------------------------ score / render


def test_score_davis_keys_and_ranges(tiny_davis: Path, written: MaskResults) -> None:
    metrics, tracked, table = score_davis(written, SEQUENCES, davis_params(tiny_davis), RUNTIME)
    assert list(metrics) == list(GLOBAL_KEYS)  # official order: JF_mean, J_mean, J_recall, J_decay, F_...
    assert all(type(v) is float for v in metrics.values())
    for key in ("JF_mean", "J_mean", "J_recall", "F_mean", "F_recall"):
        assert 0.0 <= metrics[key] <= 1.0, key
    for key in ("J_decay", "F_decay"):  # mean of first-quarter minus last-quarter: may be negative
        assert -1.0 <= metrics[key] <= 1.0, key
    assert metrics["JF_mean"] == pytest.approx((metrics["J_mean"] + metrics["F_mean"]) / 2, abs=1e-6)
    json.dumps(metrics)  # JSONDataset-ready (plain floats)

    assert set(tracked) == {*GLOBAL_KEYS, "frames_per_second"}
    assert all(set(v) == {"value", "step"} and v["step"] == 0 for v in tracked.values())
    assert all(tracked[k]["value"] == metrics[k] for k in GLOBAL_KEYS)
    assert tracked["frames_per_second"]["value"] == written.info["frames_per_second"] > 0

    n_objects = sum(len(load_sequence(tiny_davis, s).object_ids) for s in SEQUENCES)
    assert list(table.columns) == list(PER_OBJECT_COLUMNS) and len(table) == n_objects
    assert table["Sequence"].iloc[0] == "demo-00_1"
    assert table[["J-Mean", "F-Mean"]].apply(lambda c: c.between(0, 1).all()).all()


def test_score_davis_ground_truth_is_perfect(tiny_davis: Path, tmp_path: Path) -> None:
    results = tmp_path / "gt_results"
    for seq in SEQUENCES:
        shutil.copytree(tiny_davis / ANNOTATIONS_DIR / seq, results / seq)
    metrics, tracked, table = score_davis(
        MaskResults(results, {}), SEQUENCES, davis_params(tiny_davis), RUNTIME
    )
    assert metrics == {
        "JF_mean": 1.0,
        "J_mean": 1.0,
        "J_recall": 1.0,
        "J_decay": 0.0,
        "F_mean": 1.0,
        "F_recall": 1.0,
        "F_decay": 0.0,
    }
    assert "frames_per_second" not in tracked  # no run_info.json: no throughput to report
    assert (table[["J-Mean", "F-Mean"]] == 1.0).all().all()


def test_render_overlays_figure(tiny_davis: Path, written: MaskResults) -> None:
    fig = render_overlays(written, SEQUENCES, davis_params(tiny_davis), {**RUNTIME, "overlays": 1})
    try:
        assert isinstance(fig, Figure)
        assert len(fig.axes) == 3  # 1 sequence x (first, middle, last frame)
        assert [ax.get_title() for ax in fig.axes] == [
            "demo-00 / 00000",
            "demo-00 / 00003",
            "demo-00 / 00005",
        ]
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- GIFs, correspondence


@pytest.mark.parametrize("overlays", [0, 1, 5])
def test_render_davis_videos_one_gif_per_shown_sequence(
    tiny_davis: Path, written: MaskResults, tmp_path: Path, overlays: int
) -> None:
    videos = render_davis_videos(written, SEQUENCES, davis_params(tiny_davis), {**RUNTIME, "overlays": overlays})
    assert list(videos) == SEQUENCES[:overlays]
    GifFolderDataset(path=str(tmp_path / "videos"), fps=10, max_side=48).save(videos)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"{s}.gif" for s in SEQUENCES[:overlays]]
    for seq in SEQUENCES[:overlays]:
        with Image.open(tmp_path / "videos" / f"{seq}.gif") as gif:
            assert gif.n_frames == N_FRAMES and gif.size == (48, 32)  # 96 x 64 frames, larger side 48


def test_render_correspondence_with_a_semantic_network(tiny_davis: Path) -> None:
    semantic = {"arch": "resnet18", "checkpoint": None, "seed": 1}
    fig = render_correspondence(SEQUENCES, davis_params(tiny_davis), BACKBONE, semantic, FUSION, RUNTIME)
    try:
        panels = [ax for ax in fig.axes if ax.get_images()]
        titles = [ax.get_title().split(":")[0] for ax in panels]
        n_rows = len(panels) // 4
        assert 1 <= n_rows <= 3 and titles[1:4] == ["semantic", "FC", "fused"]
        assert fig._suptitle.get_text().startswith("demo-00: frame 00000 -> frame 00003")
    finally:
        plt.close(fig)
