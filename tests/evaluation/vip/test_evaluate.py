"""End-to-end tests of the VIP loop (:mod:`sfc.evaluation.vip.evaluate`) on the generated demo dataset,
with a random-init ResNet-18: select, predict, write, score; and the errors of the folder scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sfc.config import BackboneConfig, FusionConfig, SemanticConfig, VipConfig
from sfc.evaluation.common import FramePrediction, Networks, PredictionStats, load_networks
from sfc.evaluation.davis.reader import write_mask
from sfc.evaluation.vip.evaluate import (
    evaluate_results,
    input_size,
    overlay_samples,
    predict_video,
    predict_videos,
    read_prediction,
    score_folder,
    select_videos,
)
from sfc.evaluation.vip.metric import ConfusionMatrix
from sfc.evaluation.vip.reader import (
    ANNOTATIONS_DIR,
    CLASSES,
    IGNORE,
    VipFormatError,
    load_video,
    read_labels,
)

PROP = {"topk": 10, "temperature": 0.07, "radius": 15, "context": 8}
IMAGE_SIZE = 128  # 16 x 16 feature grid: small and fast, large enough for the figure's parts


def _cfg(root: Path, **over: Any) -> VipConfig:
    values = {"root": str(root), "split": "lists/val_videos.txt", "image_size": IMAGE_SIZE, "max_frames": None,
              "settings": "paper", "single": PROP, "fused": {"lambda": 1.0, **PROP}}
    return VipConfig.from_dict({**values, **over})


@pytest.fixture(scope="module")
def networks() -> Networks:
    return load_networks(BackboneConfig(arch="resnet18", checkpoint=None, seed=0),
                         SemanticConfig(arch=None, checkpoint=None, seed=0), FusionConfig(lam=1.0, align="error"), "cpu")


@pytest.fixture(scope="module")
def results(demo_vip: Path, networks: Networks, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PredictionStats]]:
    """The demo videos propagated and written as this project writes them (palette PNGs + run_info.json)."""
    cfg = _cfg(demo_vip)
    out = tmp_path_factory.mktemp("vip_results")
    stats: list[PredictionStats] = []
    for pred in predict_videos(cfg, select_videos(cfg), networks, cfg.single, stats_out=stats, progress=False):
        write_mask(out / pred.sequence / f"{pred.frame}.png", pred.mask)
    (out / "run_info.json").write_text(json.dumps({"frames": sum(s.frames for s in stats)}))
    return out, stats


def _gt_dir(root: Path) -> Path:
    return root / ANNOTATIONS_DIR


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


# ------------------------------------------------------------------------------------------ selection
def test_select_videos_from_list_or_all(demo_vip: Path, tmp_path: Path) -> None:
    assert select_videos(_cfg(demo_vip)) == ["demo-00", "demo-01"]
    assert select_videos(_cfg(demo_vip, split=None, max_frames=2)) == ["demo-00", "demo-01"]
    listing = tmp_path / "one.txt"
    listing.write_text("demo-01\n")
    assert select_videos(_cfg(demo_vip, split=str(listing))) == ["demo-01"]


def test_select_videos_validates_every_video(vip_copy: Path) -> None:
    (vip_copy / ANNOTATIONS_DIR / "demo-01" / "000000000007.png").unlink()
    with pytest.raises(VipFormatError, match="000000000007.png: annotation of frame"):
        select_videos(_cfg(vip_copy))
    assert select_videos(_cfg(vip_copy, max_frames=6)) == ["demo-00", "demo-01"]


def test_input_size(demo_vip: Path) -> None:
    video = load_video(demo_vip, "demo-00")
    assert input_size(_cfg(demo_vip), video) == (IMAGE_SIZE, IMAGE_SIZE)
    assert input_size(_cfg(demo_vip, image_size=None), video) == (120, 160)


# ----------------------------------------------------------------------------------------- prediction
def test_predict_video_every_frame_at_annotation_size(demo_vip: Path, networks: Networks) -> None:
    video = load_video(demo_vip, "demo-00", max_frames=4)
    stats = PredictionStats("demo-00")
    preds = list(predict_video(video, networks, _cfg(demo_vip).single, size=(64, 64), stats=stats))
    assert [p.frame for p in preds] == video.frame_names and all(isinstance(p, FramePrediction) for p in preds)
    assert all(p.sequence == "demo-00" and p.mask.shape == (120, 160) and p.mask.dtype == np.uint8 for p in preds)
    first_ids = set(np.unique(video.first_labels).tolist()) - {IGNORE}
    assert all(set(np.unique(p.mask).tolist()) <= first_ids for p in preds)  # no void, no invented id
    assert stats.frames == 4 and stats.feature_size == (8, 8) and stats.labels == len(first_ids)
    # frame 0 is predicted too: the first annotation down to the grid and up again
    labelled = video.first_labels != IGNORE
    assert (preds[0].mask == video.first_labels)[labelled].mean() > 0.8


def test_end_to_end_random_resnet18_well_above_chance(demo_vip: Path, results: tuple[Path, list[PredictionStats]]) -> None:
    out, stats = results
    assert [s.frames for s in stats] == [8, 8] and all(s.feature_size == (16, 16) for s in stats)
    metrics, per_class, hist = evaluate_results(demo_vip, out, ["demo-00", "demo-01"])
    assert set(metrics) == {"mIoU", "overall_accuracy", "mean_accuracy", "fwavacc"}
    assert isinstance(per_class, pd.DataFrame) and list(per_class.columns) == [
        "class_id", "name", "IoU", "accuracy", "gt_pixels"]
    assert per_class["name"].tolist() == list(CLASSES) and hist.shape == (20, 20)
    assert per_class["gt_pixels"].sum() == hist.sum()
    assert np.isnan(per_class.loc[1, "IoU"])  # no hat anywhere: excluded
    np.testing.assert_allclose(np.nanmean(per_class["IoU"]), metrics["mIoU"])

    # chance: everything background
    chance = ConfusionMatrix()
    for video in ("demo-00", "demo-01"):
        for path in sorted((_gt_dir(demo_vip) / video).glob("*.png")):
            gt = read_labels(path)
            chance.update(gt, np.zeros_like(gt))
    chance_miou = 100 * chance.scores()["mIoU"]
    assert chance_miou < 10
    assert metrics["mIoU"] > 3 * chance_miou, (metrics, chance_miou)
    assert metrics["overall_accuracy"] > 85


def test_score_folder_equals_evaluate_results_and_skips_top_level_files(
    demo_vip: Path, results: tuple[Path, list[PredictionStats]]
) -> None:
    out, _ = results
    metrics, _, hist = evaluate_results(demo_vip, out, ["demo-00", "demo-01"])
    s, hist2, files = score_folder(_gt_dir(demo_vip), out)  # run_info.json at the top is not a video
    np.testing.assert_array_equal(hist, hist2)
    assert s["mIoU"] * 100 == pytest.approx(metrics["mIoU"], abs=1e-12)
    assert len(files) == 16 and files[0] == "demo-00/000000000001.png"
    one, _, _ = evaluate_results(demo_vip, out, ["demo-01"])
    assert one["mIoU"] != metrics["mIoU"]


def test_overlay_samples(demo_vip: Path, results: tuple[Path, list[PredictionStats]]) -> None:
    out, _ = results
    rows = overlay_samples(demo_vip, out, ["demo-00", "demo-01", "absent"], 5)
    assert len(rows) == 2 and [t for t, _, _ in rows[1]] == [
        "demo-01 / 000000000001", "demo-01 / 000000000005", "demo-01 / 000000000008"]
    assert all(f.shape == (120, 160, 3) and m.shape == (120, 160) and m.dtype == np.uint8 for _, f, m in rows[0])


# -------------------------------------------------------------------------------------------- scoring
@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """A GT folder of 2 videos (3 frames of 12 x 16 each) and a perfect gray predictions folder."""
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gts = {}
    for video in ("v1", "v2"):
        for t in range(1, 4):
            gt = rng.choice(np.array([0, 2, 4, 13, 255], np.uint8), size=(12, 16))
            key = f"{video}/{t:05d}.png"
            gts[key] = gt
            _save(gt_dir / key, gt)
            _save(pred_dir / key, np.where(gt == 255, 0, gt).astype(np.uint8))
    return gt_dir, pred_dir, gts


def test_score_folder_perfect_and_official_file_semantics(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, gts = folders
    s, hist, files = score_folder(gt_dir, pred_dir)
    assert s["mIoU"] == 1.0 and files == sorted(gts)
    assert hist.sum() == sum(int((g != 255).sum()) for g in gts.values())
    # a GT frame without a prediction is simply not scored (first frame included when present)
    (pred_dir / "v1" / "00002.png").unlink()
    _, hist, files = score_folder(gt_dir, pred_dir)
    assert "v1/00002.png" not in files and len(files) == 5 and hist.sum() == sum(
        int((g != 255).sum()) for k, g in gts.items() if k != "v1/00002.png")


def test_score_folder_resizes_predictions_with_pillow_nearest(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, gts = folders
    key = "v2/00001.png"
    big = np.repeat(np.repeat(np.where(gts[key] == 255, 0, gts[key]), 2, 0), 2, 1).astype(np.uint8)
    _save(pred_dir / key, big)  # 2x the GT size, as CRW writes at cropSize
    s, _, _ = score_folder(gt_dir, pred_dir)
    assert s["mIoU"] == 1.0


def test_score_folder_reads_gray_rgb_and_palette_predictions(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, gts = folders
    ids = np.where(gts["v1/00001.png"] == 255, 0, gts["v1/00001.png"]).astype(np.uint8)
    _save(pred_dir / "v1/00001.png", np.repeat(ids[..., None], 3, -1))  # R = G = B, as CRW test.py writes
    write_mask(pred_dir / "v1/00002.png", np.where(gts["v1/00002.png"] == 255, 0, gts["v1/00002.png"]))  # palette
    assert Image.open(pred_dir / "v1/00002.png").mode == "P"
    np.testing.assert_array_equal(read_prediction(pred_dir / "v1/00001.png"), ids)
    assert score_folder(gt_dir, pred_dir)[0]["mIoU"] == 1.0


def test_score_folder_refuses_blend_jpeg(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, _ = folders
    blend = pred_dir / "v1" / "00001.jpg_blend.jpg"
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(blend)
    with pytest.raises(VipFormatError, match=rf"{blend}: expected only prediction PNGs.*CRW test.py.*delete it"):
        score_folder(gt_dir, pred_dir)


def test_score_folder_refuses_colour_png(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, _ = folders
    colour = np.zeros((12, 16, 3), np.uint8)
    colour[..., 0] = 2  # R != G: a colour, not an id
    _save(pred_dir / "v2/00003.png", colour)
    with pytest.raises(VipFormatError, match=r"v2/00003.png: .*colour RGB image"):
        score_folder(gt_dir, pred_dir)
    _save(pred_dir / "v2/00003.png", np.zeros((12, 16, 4), np.uint8))
    with pytest.raises(VipFormatError, match="mode 'RGBA'"):
        score_folder(gt_dir, pred_dir)


def test_score_folder_refuses_prediction_without_gt(folders: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    gt_dir, pred_dir, _ = folders
    _save(pred_dir / "v3" / "00001.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(VipFormatError, match=rf"{pred_dir / 'v3' / '00001.png'}: prediction without ground truth: "
                                            rf"expected {gt_dir / 'v3' / '00001.png'}"):
        score_folder(gt_dir, pred_dir)


@pytest.mark.parametrize("bad", [20, 21, 255])
def test_score_folder_refuses_values_outside_classes(folders: tuple[Path, Path, dict[str, np.ndarray]], bad: int) -> None:
    gt_dir, pred_dir, _ = folders
    pred = np.zeros((12, 16), np.uint8)
    pred[3, 4] = bad
    _save(pred_dir / "v1/00003.png", pred)
    with pytest.raises(VipFormatError, match=rf"v1/00003.png: expected predicted part ids 0..19, found \[{bad}\]"):
        score_folder(gt_dir, pred_dir)


def test_score_folder_other_errors(folders: tuple[Path, Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    gt_dir, pred_dir, _ = folders
    with pytest.raises(FileNotFoundError, match="predictions folder not found"):
        score_folder(gt_dir, tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VipFormatError, match="found none"):
        score_folder(gt_dir, tmp_path / "empty")
    (pred_dir / "v1" / "nested").mkdir()
    with pytest.raises(VipFormatError, match="found a folder"):
        score_folder(gt_dir, pred_dir)


def test_evaluate_results_errors(demo_vip: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results folder of video 'demo-00' not found"):
        evaluate_results(demo_vip, tmp_path, ["demo-00"])
    (tmp_path / "demo-00").mkdir()
    with pytest.raises(VipFormatError, match="found none"):
        evaluate_results(demo_vip, tmp_path, ["demo-00"])
    with pytest.raises(VipFormatError, match="empty list"):
        evaluate_results(demo_vip, tmp_path, [])
