"""JHMDB label encoding, decoding and PCK equal the official CRW code's own outputs (``pck/``).

The goldens (``../shared/golden/pck``, see its README) were produced by ``videowalk``'s
``data/jhmdb.py`` (encoding), ``utils/test_utils.py::process_pose`` (decoding) and
``eval/eval_pck.py`` (scoring), dumping their own variables at full precision. Everything here is
compared **exactly** (bit for bit, NaN positions included): the label maps and feature coordinates,
the decoded coordinates (also the tie-dependent cases: ``torch.topk`` on the CPU orders the tied
pixels as the official run did, so no tolerance is needed), the scaled predictions, visibility,
normalisers, normalised distances and PCK tables. ``gen_lost`` run alone makes the official script
raise ``ZeroDivisionError``; ours reports NaN for its never-scored joints (3 and 14) instead.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch

from sfc.evaluation.jhmdb.evaluate import score_videos
from sfc.evaluation.jhmdb.labels import decode_joints, draw_labelmap, encode_joints, feature_coords
from sfc.evaluation.jhmdb.metric import (
    THRESHOLDS,
    PckResult,
    normalised_distances,
    normalisers,
    pck,
    scale_predictions,
    scored_counts,
    visibility,
)
from sfc.evaluation.jhmdb.reader import JOINTS, JhmdbVideo, load_video
from tests.golden.conftest import golden_dir, load_manifest, load_pck_npz, pck_params, realdata_dir

OFFICIAL_INPUT = (320, 320)
OFFICIAL_GRID = (40, 40)


def _real_name(manifest_path: str) -> str:
    """``<class>/<video>`` of a manifest path such as ``realdata/jhmdb/Rename_Images/<class>/<video>``."""
    parts = PurePosixPath(manifest_path).parts
    return f"{parts[-2]}/{parts[-1]}"


def _real_video(clip: str) -> JhmdbVideo:
    """The real clip of ``clips.<clip>``, read by our reader from ``../shared/realdata/jhmdb``."""
    entry = load_manifest("pck")["clips"][clip]
    return load_video(realdata_dir("jhmdb"), _real_name(entry["frames"]))


def _ground_truth(case: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """``pos_img`` (1-based) of a case: the real .mat through our reader, or the npz's own array."""
    if "pos_img" in arrays:
        return arrays["pos_img"]
    video = _real_video("real_catch")
    assert video.size == tuple(int(v) for v in arrays["image_hw"]), f"{case}: frame size differs from the golden"
    return video.pos_img


def test_golden_manifest_conventions() -> None:
    manifest = load_manifest("pck")
    assert tuple(manifest["joints"]) == JOINTS
    assert tuple(manifest["thresholds"]) == THRESHOLDS
    params = manifest["encode_params"]
    assert (params["imgSize"], params["mapScale"], params["sigma"], params["feat_res_in_eval"], params["topk_decode"]) == (
        320, [8, 8], 0.5, 40, 3
    )


def test_golden_draw_labelmap_points() -> None:
    arrays = load_pck_npz("draw_labelmap_points.npz")
    sigma = float(arrays["sigma"])
    for point, expected in zip(arrays["points"], arrays["maps"], strict=True):
        m = np.zeros(expected.shape, dtype=np.float64)
        out = draw_labelmap(m, (float(point[0]), float(point[1])), sigma)
        assert out is m
        np.testing.assert_array_equal(m, expected, err_msg=f"draw_labelmap at {tuple(point)}")


@pytest.mark.parametrize("clip", pck_params("clips"))
def test_golden_encode(clip: str | None) -> None:
    golden_dir("pck")
    assert clip is not None
    entry = load_manifest("pck")["encode"][clip]
    arrays = load_pck_npz(entry["file"])
    pos_img = _ground_truth(clip, arrays)
    image_hw = tuple(int(v) for v in arrays["image_hw"])
    assert tuple(int(v) for v in arrays["resized_hw"]) == OFFICIAL_INPUT

    coords = feature_coords(pos_img, image_hw, OFFICIAL_INPUT)
    assert coords.dtype == np.float64
    np.testing.assert_array_equal(coords, arrays["coords_feat"], err_msg=f"{clip}: coords_feat")

    maps = np.stack([encode_joints(coords[:, :, t], OFFICIAL_GRID) for t in range(coords.shape[2])])
    assert maps.dtype == np.float32 and maps.shape == tuple(entry["label_map_shape"])
    np.testing.assert_array_equal(maps, arrays["label_maps"], err_msg=f"{clip}: label_maps")
    not_drawn = [j for j in range(15) if not maps[0, :, :, j + 1].any()]
    assert not_drawn == entry["joints_not_drawn_in_frame1"]


@pytest.mark.parametrize("case", pck_params("decode"))
def test_golden_decode(case: str | None) -> None:
    golden_dir("pck")
    assert case is not None
    arrays = load_pck_npz("decode.npz")
    soft, expected = arrays[f"map_{case}"], arrays[f"coords_{case}"]
    ours = decode_joints(soft)
    assert ours.dtype == np.float32 and ours.shape == (2, 15)
    tie_dependent = load_manifest("pck")["decode"][case]["tie_dependent"]
    # Tie-dependent cases too: torch.topk on the CPU returns the tied pixels in the official order
    # (peak, left, upper), so the float32 sums agree bit for bit (a stable sort would differ by <= 4e-6).
    np.testing.assert_array_equal(ours, expected, err_msg=f"{case} (tie-dependent: {tie_dependent})")
    np.testing.assert_array_equal(ours, np.asarray(load_manifest("pck")["decode"][case]["coords"], np.float32))
    np.testing.assert_array_equal(decode_joints(torch.from_numpy(soft.copy())), expected)


def test_golden_real_oracle_predictions_are_decoded_label_maps() -> None:
    """``real_oracle``'s ``.dat`` = decode of every frame's official map: encode -> decode, ties included."""
    video = _real_video("real_catch")
    expected = load_pck_npz("eval_real_oracle.npz")["pred_feat"]
    coords = feature_coords(video.pos_img, video.size, OFFICIAL_INPUT)
    ours = np.stack([decode_joints(encode_joints(coords[:, :, t], OFFICIAL_GRID)) for t in range(video.num_frames)], -1)
    np.testing.assert_array_equal(ours, expected)


def test_golden_dat_equals_pred_feat() -> None:
    """The official pickled ``.dat`` (as ``test.py`` writes it) holds the stored ``pred_feat``."""
    dat = np.load(golden_dir("pck") / "dat" / "real_catch.dat", allow_pickle=True)  # an official pickle: test only
    expected = load_pck_npz("eval_real_catch.npz")["pred_feat"]
    assert dat.dtype == np.float32 and dat.shape == expected.shape == (2, 15, 40)
    np.testing.assert_array_equal(dat, expected)


def _official_steps(case: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(our intermediate arrays, the golden arrays) of one ``eval_<case>.npz``."""
    arrays = load_pck_npz(f"eval_{case}.npz")
    gt0 = _ground_truth(case, arrays) - 1
    image_hw = tuple(int(v) for v in arrays["image_hw"])
    visible = visibility(arrays["pred_feat"])
    pred_img = scale_predictions(arrays["pred_feat"], image_hw)
    box = normalisers(gt0, visible)
    dnorm = normalised_distances(pred_img, gt0, visible, box)
    return {"visible": visible, "pred_img": pred_img, "box": box, "dnorm": dnorm}, arrays


@pytest.mark.parametrize("case", pck_params("eval", exclude=("pooled",)))
def test_golden_eval(case: str | None) -> None:
    golden_dir("pck")
    assert case is not None
    entry = load_manifest("pck")["eval"][case]
    ours, arrays = _official_steps(case)
    assert ours["pred_img"].dtype == np.float32
    for key in ("visible", "pred_img", "box", "dnorm"):
        np.testing.assert_array_equal(ours[key], arrays[key], err_msg=f"{case}: {key}")  # NaN positions included
    result = PckResult.from_distances([ours["dnorm"]])
    np.testing.assert_array_equal(result.scored, np.asarray([(~np.isnan(d)).sum() for d in arrays["dnorm"]]))
    if case == "gen_lost":
        assert "ZeroDivisionError" in entry["official_error"]
        return  # test_golden_gen_lost_alone
    np.testing.assert_array_equal(result.table, arrays["pck"], err_msg=f"{case}: pck (5, 16)")
    assert result.scored.tolist() == entry["n_scored_per_joint"]
    assert result.mean[0.1] == entry["PCK@0.1"] and result.mean[0.2] == entry["PCK@0.2"]
    for t in THRESHOLDS:
        assert result.mean[t] == entry["mean_pck_per_threshold"][str(t)]
        assert result.table[THRESHOLDS.index(t), :-1].tolist() == entry["per_joint_pck"][str(t)]
    for t, line in zip(THRESHOLDS, entry["official_stdout"], strict=True):  # e.g. "0.1: [40.86622553]"
        assert line.startswith(f"{t}: [")
        assert result.mean[t] == pytest.approx(float(line.split("[")[1].rstrip("]")), abs=5e-9)


def test_golden_gen_lost_alone() -> None:
    """Alone, ``gen_lost`` crashes the official script; ours gives NaN for the never-scored joints."""
    manifest = load_manifest("pck")
    lost = manifest["encode"]["gen_lost"]["joints_not_drawn_in_frame1"]
    assert lost == [3, 14]
    ours, arrays = _official_steps("gen_lost")
    result = PckResult.from_distances([ours["dnorm"]])
    assert result.unscored_joints == lost
    assert np.isnan(result.table[:, lost]).all()
    scored = [j for j in range(15) if j not in lost]
    assert not np.isnan(result.table[:, scored]).any()
    np.testing.assert_allclose(result.table[:, -1], result.table[:, scored].mean(axis=1), rtol=1e-14)
    assert (arrays["pred_feat"][0, lost] == -1).all()


def _videos_in_order(names: list[str]) -> tuple[dict[str, JhmdbVideo], dict[str, np.ndarray]]:
    videos: dict[str, JhmdbVideo] = {}
    predictions: dict[str, np.ndarray] = {}
    for name in names:
        arrays = load_pck_npz(f"eval_{name}.npz")
        pos_img = _ground_truth(name, arrays)
        size = (int(arrays["image_hw"][0]), int(arrays["image_hw"][1]))
        frames = [Path(f"{t + 1:05d}.png") for t in range(pos_img.shape[2])]
        videos[name] = JhmdbVideo(name=name, frame_paths=frames, mat_path=Path("joint_positions.mat"), pos_img=pos_img,
                                  size=size)
        predictions[name] = arrays["pred_feat"]
    return videos, predictions


def test_golden_eval_pooled() -> None:
    """Four videos in one filelist: distances pooled per joint in list order, then PCK."""
    entry = load_manifest("pck")["eval"]["pooled"]
    names = entry["videos_in_filelist_order"]
    expected = load_pck_npz("eval_pooled.npz")["pck"]
    distances = [_official_steps(name)[0]["dnorm"] for name in names]
    table = pck(distances)
    np.testing.assert_array_equal(table, expected)
    assert scored_counts(distances).tolist() == entry["n_scored_per_joint"]

    videos, predictions = _videos_in_order(names)
    metrics, per_video, per_joint = score_videos(
        videos, predictions, input_sizes={n: OFFICIAL_INPUT for n in names}, stride=8
    )
    for i, t in enumerate(THRESHOLDS):
        assert metrics[f"PCK_{t:g}"] == expected[i, -1] == entry["mean_pck_per_threshold"][str(t)]
        np.testing.assert_array_equal(per_joint[f"PCK_{t:g}"].to_numpy(), expected[i, :-1])
    assert metrics["unscored_joints"] == []
    assert per_joint["joint"].tolist() == list(JOINTS)
    assert per_joint["scored"].tolist() == entry["n_scored_per_joint"]
    assert per_video["video"].tolist() == names
    # one video alone: its own row equals its own official run (gen_lost: over its 13 scored joints)
    for name in names:
        if name != "gen_lost":
            row = per_video.set_index("video").loc[name]
            assert row["PCK_0.1"] == load_manifest("pck")["eval"][name]["PCK@0.1"]
    lost = per_video.set_index("video").loc["gen_lost"]
    assert not math.isnan(lost["PCK_0.1"])
