"""End-to-end tests of :mod:`sfc.evaluation.jhmdb.evaluate` on generated JHMDB data (random-init ResNet-18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sfc.config import BackboneConfig, FusionConfig, JhmdbConfig, SemanticConfig
from sfc.data.demo_jhmdb import make_demo_jhmdb
from sfc.evaluation.common import Networks, load_networks
from sfc.evaluation.jhmdb.evaluate import input_size, predict_video, score_videos, select_videos, split_file
from sfc.evaluation.jhmdb.labels import decode_joints, encode_joints, feature_coords
from sfc.evaluation.jhmdb.reader import JOINTS, JhmdbFormatError, JhmdbVideo, load_video, mat_path

SPLIT = "splits/demo_test.txt"
NAMES = ["demo/video_00", "demo/video_01"]


def _cfg(root: Path, split: str | None = None, image_size: int | None = 64) -> JhmdbConfig:
    return JhmdbConfig.from_dict({
        "root": str(root),
        "split": split,
        "image_size": image_size,
        "settings": "paper",
        "single": {"topk": 10, "temperature": 0.07, "radius": 3, "context": 8},
        "fused": {"lambda": 1.0, "topk": 20, "temperature": 0.07, "radius": 5, "context": 8},
    })


@pytest.fixture(scope="module")
def networks() -> Networks:
    return load_networks(
        BackboneConfig(arch="resnet18", checkpoint=None, seed=0),
        SemanticConfig(arch=None, checkpoint=None, seed=0),
        FusionConfig(lam=1.0, align="error"),
        "cpu",
    )


def _videos(cfg: JhmdbConfig) -> dict[str, JhmdbVideo]:
    return {name: load_video(cfg.root, name) for name in select_videos(cfg)}


# ------------------------------------------------------------------------------------------ selection
def test_select_videos_all_or_split(tiny_jhmdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative split path is looked up under the root too
    assert select_videos(_cfg(tiny_jhmdb)) == NAMES
    assert split_file(_cfg(tiny_jhmdb)) is None
    assert split_file(_cfg(tiny_jhmdb, SPLIT)) == tiny_jhmdb / SPLIT
    assert select_videos(_cfg(tiny_jhmdb, SPLIT)) == NAMES
    (tmp_path / "mine.txt").write_text("video_01.avi 2\nvideo_00.avi 1\n")
    assert select_videos(_cfg(tiny_jhmdb, "mine.txt")) == ["demo/video_01"]
    assert select_videos(_cfg(tiny_jhmdb, str(tmp_path / "mine.txt"))) == ["demo/video_01"]


def test_select_videos_missing_split_file(tiny_jhmdb: Path) -> None:
    with pytest.raises(JhmdbFormatError, match="split file not found.*jhmdb.split"):
        select_videos(_cfg(tiny_jhmdb, "splits/none.txt"))


def test_select_videos_unknown_lists_available(tiny_jhmdb: Path, tmp_path: Path) -> None:
    split = tmp_path / "s.txt"
    split.write_text(
        "Rename_Images/demo/video_07 joint_positions/demo/video_07/joint_positions.mat\n"
        "Rename_Images/demo/video_00 joint_positions/demo/video_00/joint_positions.mat\n"
    )
    with pytest.raises(JhmdbFormatError, match=r"unknown video\(s\).*'demo/video_07'.*2 available: demo/video_00"):
        select_videos(_cfg(tiny_jhmdb, str(split)))


def test_select_videos_validates_every_video_first(jhmdb_copy: Path) -> None:
    scipy.io.savemat(mat_path(jhmdb_copy, "demo/video_01"), {"pos_img": np.zeros((2, 15, 2))})
    with pytest.raises(JhmdbFormatError, match="found pos_img with T = 2") as info:
        select_videos(_cfg(jhmdb_copy, SPLIT))
    assert str(mat_path(jhmdb_copy, "demo/video_01")) in str(info.value)


def test_select_videos_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "Rename_Images").mkdir()
    with pytest.raises(JhmdbFormatError, match="expected at least one video"):
        select_videos(_cfg(tmp_path))


def test_input_size(tiny_jhmdb: Path) -> None:
    video = load_video(tiny_jhmdb, NAMES[0])
    assert input_size(_cfg(tiny_jhmdb, image_size=320), video) == (320, 320)
    assert input_size(_cfg(tiny_jhmdb, image_size=None), video) == video.size == (48, 64)


# ----------------------------------------------------------------------------------------- prediction
def test_predict_video_is_the_dat_content(tiny_jhmdb: Path, networks: Networks) -> None:
    cfg = _cfg(tiny_jhmdb, image_size=64)
    video = load_video(tiny_jhmdb, NAMES[0])
    pred = predict_video(video, networks, cfg.single, size=input_size(cfg, video))
    assert pred.shape == (2, 15, video.num_frames) and pred.dtype == np.float32
    # frame 0: the decoding of the encoded frame-0 map itself, on the 8 x 8 grid of a 64 x 64 input
    expected0 = decode_joints(encode_joints(feature_coords(video.pos_img[:, :, 0], video.size, (64, 64)), (8, 8)))
    np.testing.assert_array_equal(pred[:, :, 0], expected0)
    assert ((pred >= 0) & (pred <= 7)).all()  # every joint drawn, nothing lost


def test_predict_video_native_size(tiny_jhmdb: Path, networks: Networks) -> None:
    cfg = _cfg(tiny_jhmdb, image_size=None)
    video = load_video(tiny_jhmdb, NAMES[1])
    pred = predict_video(video, networks, cfg.single, size=input_size(cfg, video), batch_size=2)
    assert pred.shape == (2, 15, video.num_frames)
    assert (pred[0] <= 7).all() and (pred[1] <= 5).all()  # a 6 x 8 grid for 48 x 64 frames


def test_predict_video_checks_the_grid(tiny_jhmdb: Path, networks: Networks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks.fine, "stride", 16, raising=False)
    video = load_video(tiny_jhmdb, NAMES[0])
    with pytest.raises(ValueError, match=r"expected a feature grid of \(4, 4\).*found \(8, 8\)"):
        predict_video(video, networks, _cfg(tiny_jhmdb).single, size=(64, 64))


# -------------------------------------------------------------------------------------------- scoring
def test_score_videos_oracle_predictions(tiny_jhmdb: Path) -> None:
    cfg = _cfg(tiny_jhmdb, SPLIT, image_size=64)
    videos = _videos(cfg)
    sizes = {n: input_size(cfg, v) for n, v in videos.items()}
    exact = {n: feature_coords(v.pos_img, v.size, sizes[n]).astype(np.float32) for n, v in videos.items()}
    metrics, per_video, per_joint = score_videos(videos, exact, input_sizes=sizes)
    assert metrics == {"PCK_0.1": 100.0, "PCK_0.2": 100.0, "PCK_0.3": 100.0, "PCK_0.4": 100.0, "PCK_0.5": 100.0,
                       "unscored_joints": []}
    assert per_video.columns.tolist() == ["video", "frames", "scored", "PCK_0.1", "PCK_0.2", "PCK_0.3", "PCK_0.4",
                                          "PCK_0.5"]
    assert per_video["video"].tolist() == NAMES and per_video["frames"].tolist() == [5, 5]
    assert per_video["scored"].tolist() == [15 * 4, 15 * 4]  # frame 0 is never scored
    assert per_joint["joint"].tolist() == list(JOINTS) and (per_joint["scored"] == 8).all()


def test_score_videos_reports_unscored_joints(tiny_jhmdb: Path) -> None:
    cfg = _cfg(tiny_jhmdb, SPLIT)
    videos = _videos(cfg)
    sizes = {n: input_size(cfg, v) for n, v in videos.items()}
    preds = {n: feature_coords(v.pos_img, v.size, sizes[n]).astype(np.float32) for n, v in videos.items()}
    for p in preds.values():
        p[:, [3, 14]] = -1  # lost everywhere, as an empty channel propagates
    metrics, _, per_joint = score_videos(videos, preds, input_sizes=sizes)
    assert metrics["unscored_joints"] == ["right_shoulder", "left_ankle"]
    assert metrics["PCK_0.1"] == 100.0  # the mean over the 13 scored joints
    assert per_joint.loc[[3, 14], "scored"].tolist() == [0, 0]
    assert per_joint.loc[[3, 14], "PCK_0.1"].isna().all()


def test_score_videos_errors(tiny_jhmdb: Path) -> None:
    cfg = _cfg(tiny_jhmdb, SPLIT)
    videos = _videos(cfg)
    sizes = {n: (64, 64) for n in videos}
    preds = {n: np.zeros((2, 15, 5), np.float32) for n in videos}
    with pytest.raises(ValueError, match="at least one video"):
        score_videos({}, {}, input_sizes={})
    with pytest.raises(ValueError, match=r"without prediction: \['demo/video_01'\]"):
        score_videos(videos, {NAMES[0]: preds[NAMES[0]]}, input_sizes=sizes)
    with pytest.raises(ValueError, match="input size of every video"):
        score_videos(videos, preds, input_sizes={NAMES[0]: (64, 64)})
    with pytest.raises(ValueError, match="expected predictions of shape"):
        score_videos(videos, {n: p[:, :, :3] for n, p in preds.items()}, input_sizes=sizes)


def test_propagation_beats_a_random_guess(tmp_path_factory: pytest.TempPathFactory, networks: Networks) -> None:
    root = make_demo_jhmdb(tmp_path_factory.mktemp("jhmdb_e2e"), n_videos=2, n_frames=8, size=(96, 128), seed=1)
    cfg = _cfg(root, SPLIT, image_size=96)
    videos = _videos(cfg)
    sizes = {n: input_size(cfg, v) for n, v in videos.items()}
    preds = {n: predict_video(v, networks, cfg.single, size=sizes[n]) for n, v in videos.items()}
    metrics, per_video, _ = score_videos(videos, preds, input_sizes=sizes)
    rng = np.random.default_rng(0)
    guesses = {n: rng.uniform(0, 12, size=p.shape).astype(np.float32) for n, p in preds.items()}
    random_metrics, _, _ = score_videos(videos, guesses, input_sizes=sizes)
    assert metrics["unscored_joints"] == [] and len(per_video) == 2
    assert metrics["PCK_0.2"] >= 30.0
    assert metrics["PCK_0.2"] >= random_metrics["PCK_0.2"] + 20.0, (metrics, random_metrics)
