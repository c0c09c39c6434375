"""VIP mIoU and CRW's part-label encoding/decoding equal the official outputs (``golden/vip``).

* ``cihp``, ``seq``, ``pooled``: ground truth and predictions are written as gray PNGs in the official
  layout (``GT_DIR/<video>/<file>``, ``PRED_DIR/<video>/<file>``; ``cihp`` uses the real CIHP label
  files) and scored with :func:`~sfc.evaluation.vip.evaluate.score_folder`: the confusion matrix, the
  scored files, mIoU, per-class IoU (NaN positions included), per-class / overall / mean accuracy and
  fwavacc equal the official ``eval_vip.py`` numbers (exactly; floats to 1e-12).
* ``quirk_pred_value_20``: the official script counts a predicted 20 in ``hist[gt + 1, 0]``; we refuse
  the file instead, naming it and the value. The official matrix is our matrix of the other pixels plus
  exactly those misplaced counts.
* ``encode_decode``: decoding the soft maps (bilinear to 64 x 64, argmax, label set) gives the PNG
  ``dump_predictions`` wrote, and the bilinear resize of the one-hot maps of the *official* resized
  label images to the 8 x 8 grid gives the official ``label_maps``. The official label images
  themselves are not reproduced: CRW resizes them bilinearly by mistake (``cv2.resize`` argument order),
  which invents part ids; ours are resized with nearest (:func:`~sfc.evaluation.vip.labels.encode_parts`).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sfc.evaluation.vip.evaluate import read_prediction, score_folder
from sfc.evaluation.vip.labels import decode_parts, encode_parts
from sfc.evaluation.vip.metric import fast_hist, scores
from sfc.evaluation.vip.reader import N_CLASSES, VipFormatError, read_labels
from sfc.propagation.labels import downsample_labels, upsample_argmax
from tests.golden.conftest import golden_dir, load_manifest, load_npz, realdata_dir

VIP = "vip"
TOL = 1e-12
SCALARS = ("mIoU", "overall_accuracy", "mean_accuracy", "fwavacc")


def _write_gray(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8)).save(path)


def _write_case(case: str, gt_dir: Path, pred_dir: Path) -> None:
    """Write one case's ground truth and predictions in the official layout."""
    if case in ("cihp", "pooled"):
        labels = realdata_dir("cihp") / "labels"
        for key, pred in load_npz(VIP, "pred_cihp.npz").items():
            (gt_dir / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(labels / Path(key).name, gt_dir / key)  # the real CIHP label file (mode L)
            _write_gray(pred_dir / key, pred)
    if case in ("seq", "pooled"):
        for key, gt in load_npz(VIP, "gt_seq.npz").items():
            _write_gray(gt_dir / key, gt)
        for key, pred in load_npz(VIP, "pred_seq.npz").items():
            _write_gray(pred_dir / key, pred)
    if case == "quirk_pred_value_20":
        for key, gt in load_npz(VIP, "gt_quirk_pred_value_20.npz").items():
            _write_gray(gt_dir / key, gt)
        for key, pred in load_npz(VIP, "pred_quirk_pred_value_20.npz").items():
            _write_gray(pred_dir / key, pred)


def _assert_close_with_nan(ours: np.ndarray, official: list[float | None], what: str) -> None:
    expected = np.array([np.nan if v is None else v for v in official], dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected), err_msg=f"{what}: NaN positions")
    np.testing.assert_allclose(ours[~np.isnan(ours)], expected[~np.isnan(expected)], rtol=0, atol=TOL, err_msg=what)


def _assert_scores_match(ours: dict[str, Any], entry: dict[str, Any], case: str) -> None:
    for key in SCALARS:
        assert ours[key] == pytest.approx(entry[key], abs=TOL), f"{case} {key}: {ours[key]!r} vs {entry[key]!r}"
    _assert_close_with_nan(ours["per_class_IoU"], entry["per_class_IoU"], f"{case} per-class IoU")
    _assert_close_with_nan(ours["per_class_accuracy"], entry["per_class_accuracy"], f"{case} per-class accuracy")
    counted = [c for c in range(N_CLASSES) if not math.isnan(ours["per_class_IoU"][c])]
    assert counted == entry["classes_counted_in_mean"], case


@pytest.mark.parametrize("case", ["cihp", "seq", "pooled"])
def test_golden_vip_miou_matches_official(case: str, tmp_path: Path) -> None:
    entry = load_manifest(VIP)["cases"][case]
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    _write_case(case, gt_dir, pred_dir)

    ours, hist, files = score_folder(gt_dir, pred_dir)

    assert files == sorted(entry["scored_files"]), case
    np.testing.assert_array_equal(hist, np.array(entry["hist"], dtype=np.int64), err_msg=f"{case}: hist")
    _assert_scores_match(ours, entry, case)


def test_golden_vip_quirk_pred_value_20_is_refused(tmp_path: Path) -> None:
    entry = load_manifest(VIP)["cases"]["quirk_pred_value_20"]
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    _write_case("quirk_pred_value_20", gt_dir, pred_dir)
    (key,) = entry["scored_files"]

    with pytest.raises(VipFormatError, match=rf"{pred_dir / key}: expected predicted part ids 0..19, found \[20\]"):
        score_folder(gt_dir, pred_dir)

    # The official matrix = ours over the other pixels + each predicted 20 misplaced at hist[gt + 1, 0].
    gt = read_labels(gt_dir / key).astype(np.int64)
    pred = read_prediction(pred_dir / key).astype(np.int64)
    is20 = pred == 20
    ours = fast_hist(np.where(is20, 255, gt), np.where(is20, 0, pred))
    misplaced_gt = gt[is20 & (gt >= 0) & (gt < N_CLASSES)]
    assert misplaced_gt.size > 0 and (misplaced_gt < N_CLASSES - 1).all()  # gt = 19 would crash the official
    official = ours.copy()
    np.add.at(official, (misplaced_gt + 1, 0), 1)
    np.testing.assert_array_equal(official, np.array(entry["hist"], dtype=np.int64))
    _assert_scores_match(scores(official), entry, "quirk_pred_value_20")


def test_golden_vip_encode_decode() -> None:
    golden_dir(VIP)
    data = load_npz(VIP, "encode_decode.npz")
    summary = load_manifest(VIP)["encode_decode"]
    lblset = data["lblset"]
    ids = lblset[:, 0]
    assert (lblset == ids[:, None]).all() and ids.tolist() == [row[0] for row in summary["lblset"]]
    size = int(data["img_size"])
    grid = tuple(math.ceil(size / int(s)) for s in data["map_scale"])
    assert (size, grid) == (64, (8, 8))

    # Decoding (dump_predictions): bilinear to cropSize, argmax, label set -> the written id PNG.
    for f, (soft, written) in enumerate(zip(data["soft_in"], data["pred_written"], strict=True)):
        ours = decode_parts(torch.from_numpy(soft), ids, (size, size))
        np.testing.assert_array_equal(ours, written, err_msg=f"decoded frame {f}")
        np.testing.assert_array_equal(ids[upsample_argmax(torch.from_numpy(soft), (size, size)).numpy()], written)

    # Label maps: one-hot per label-set entry of the official (BGR) resized label images, bilinear to 8 x 8.
    for f, (image, expected) in enumerate(zip(data["resized_label_images"], data["label_maps"], strict=True)):
        onehot = np.stack([np.all(image == entry, axis=-1) for entry in lblset], axis=-1).astype(np.float32)
        ours = downsample_labels(torch.from_numpy(onehot), grid).numpy()
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6, err_msg=f"label maps of frame {f}")

    # Our encoding keeps only the annotated ids (nearest resize); the official bilinear bug adds the rest.
    onehot, our_ids = encode_parts(data["gt_labels"][0], (size, size))
    assert onehot.shape == (size, size, len(our_ids))
    assert our_ids.tolist() == summary["gt_ids_frame1"]
    assert sorted(set(ids.tolist()) - set(our_ids.tolist())) == summary["spurious_ids_in_lblset"]
