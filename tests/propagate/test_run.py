"""``propagate_video``: same masks as evaluate_davis, outputs, resume, refusals, bounded memory."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import sfc.evaluation.common as common
import sfc.propagate.run as run_module
from sfc.data.demo import render_demo_sequence
from sfc.evaluation.common import load_networks
from sfc.evaluation.davis.evaluate import predict_sequence
from sfc.evaluation.davis.reader import DAVIS_PALETTE, load_sequence, read_mask, write_mask
from sfc.propagate import PropagateInputError, load_settings, propagate_video
from sfc.propagate.sources import FrameSource
from tests.propagate.conftest import CLIP_FRAMES, CLIP_SIZE

CONTEXT = 3  # small m, so that short clips wrap the engine's ring and drop frame 0's bands


def _settings(**overrides: object):
    return load_settings(device="cpu", **{"context": CONTEXT, **overrides})


def _masks(out: Path) -> list[np.ndarray]:
    return [read_mask(p) for p in sorted((out / "masks").glob("*.png"))]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_masks_equal_evaluate_davis(tiny_davis: Path, tmp_path: Path) -> None:
    """Frames 1.. are the masks evaluate_davis's predict_sequence writes; frame 0 is the given mask."""
    settings = load_settings(device="cpu")  # conf/base defaults, as evaluate_davis
    seq = load_sequence(tiny_davis, "demo-00")
    first = Path(tiny_davis) / "Annotations" / "480p" / "demo-00" / "00000.png"
    result = propagate_video(seq.frame_paths[0].parent, first, tmp_path / "out", settings, overlay=None, progress=False)
    assert result.frames == seq.num_frames and result.computed == seq.num_frames - 1
    networks = load_networks(settings.backbone, settings.semantic, settings.fusion, "cpu")
    expected = [p.mask for p in predict_sequence(seq, networks, settings.propagation, scale=settings.scale, progress=False)]
    got = _masks(tmp_path / "out")
    np.testing.assert_array_equal(got[0], read_mask(first))
    for t in range(1, seq.num_frames):
        np.testing.assert_array_equal(got[t], expected[t], err_msg=f"frame {t}")


def test_video_outputs(clip: tuple[np.ndarray, np.ndarray], clip_mp4: Path, clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = propagate_video(clip_mp4, clip_dir / "first.png", out, _settings(), progress=False)
    assert (result.frames, result.computed, result.resumed) == (CLIP_FRAMES, CLIP_FRAMES - 1, 0)
    pngs = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(CLIP_FRAMES)]
    with Image.open(pngs[5]) as img:
        assert img.mode == "P" and img.size == CLIP_SIZE[::-1]
        assert np.array_equal(np.array(img.getpalette()[:30], np.uint8), DAVIS_PALETTE[:10].ravel())
    s = _summary(out)
    ids = [o["id"] for o in s["objects"]]
    assert ids == sorted(set(np.unique(clip[1][0]).tolist()) - {0})
    assert s["frames"] == CLIP_FRAMES and s["frames_computed"] == CLIP_FRAMES - 1 and s["frames_resumed"] == 0
    assert all(len(s["area_pixels"][str(i)]) == CLIP_FRAMES for i in ids)
    assert s["area_pixels"][str(ids[0])][0] == int((clip[1][0] == ids[0]).sum())
    assert s["frame_size"] == {"height": CLIP_SIZE[0], "width": CLIP_SIZE[1]}
    assert s["feature_size"] == {"height": CLIP_SIZE[0] // 8, "width": CLIP_SIZE[1] // 8}
    assert s["seconds_per_frame"] > 0
    assert s["settings"]["propagation"]["context"] == CONTEXT
    assert s["networks"]["backbone"]["sha256"] is None and s["networks"]["backbone"]["random_init_seed"] == 0
    assert s["inputs"]["video"] == str(clip_mp4.resolve()) and s["inputs"]["mask_format"] == "palette-png"
    assert s["resume"]["exact"] is True
    assert s["outputs"]["overlay"] == "overlay.gif"
    with Image.open(out / "overlay.gif") as gif:
        assert gif.size == CLIP_SIZE[::-1] and gif.n_frames >= 2


@pytest.mark.parametrize("k", [2, 6])
def test_resume_skips_finished_frames_and_equals_an_uninterrupted_run(clip_dir: Path, tmp_path: Path, k: int) -> None:
    frames, first = clip_dir / "frames", clip_dir / "first.png"
    full = propagate_video(frames, first, tmp_path / "full", _settings(), overlay=None, progress=False)
    out = tmp_path / "resumed"
    part = propagate_video(frames, first, out, _settings(), max_frames=k, overlay=None, progress=False)
    assert (part.frames, part.computed) == (k, k - 1)
    assert len(list((out / ".resume" / "soft").glob("*.npy"))) <= CONTEXT
    before = {p.name: p.stat().st_mtime_ns for p in (out / "masks").glob("*.png")}
    result = propagate_video(frames, first, out, _settings(), progress=False)
    assert (result.frames, result.computed, result.resumed) == (CLIP_FRAMES, CLIP_FRAMES - k, k)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "masks").glob("*.png")}
    assert {n: after[n] for n in before} == before  # finished frames were not rewritten
    s = _summary(out)
    assert (s["frames_resumed"], s["frames_computed"], s["resume"]["exact"]) == (k, CLIP_FRAMES - k, True)
    for t, (a, b) in enumerate(zip(_masks(tmp_path / "full"), _masks(out), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {t}")
    assert full.summary["area_pixels"] == s["area_pixels"]


def test_finished_video_is_not_recomputed(clip_mp4: Path, clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    propagate_video(clip_mp4, clip_dir / "first.png", out, _settings(), overlay=None, progress=False)

    def no_networks(*args: object, **kwargs: object) -> None:
        raise AssertionError("the networks were loaded although every frame was finished")

    monkeypatch.setattr(common, "load_networks", no_networks)
    result = propagate_video(clip_mp4, clip_dir / "first.png", out, _settings(), overlay=None, progress=False)
    assert (result.frames, result.computed, result.resumed) == (CLIP_FRAMES, 0, CLIP_FRAMES)
    assert _summary(out)["seconds_per_frame"] is None


def test_resume_without_soft_labels_is_approximate(clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    propagate_video(clip_dir / "frames", clip_dir / "first.png", out, _settings(), max_frames=6, overlay=None, progress=False)
    for p in (out / ".resume" / "soft").glob("*.npy"):
        p.unlink()
    result = propagate_video(clip_dir / "frames", clip_dir / "first.png", out, _settings(), overlay=None, progress=False)
    assert result.computed == CLIP_FRAMES - 6
    assert result.summary["resume"] == {
        "settings_key": result.summary["resume"]["settings_key"], "exact": False, "approximate_context_frames": [3, 4, 5],
    }


def test_refuses_to_resume_with_other_settings_or_inputs(clip: tuple[np.ndarray, np.ndarray], clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    frames, first = clip_dir / "frames", clip_dir / "first.png"
    propagate_video(frames, first, out, _settings(), max_frames=3, overlay=None, progress=False)
    with pytest.raises(PropagateInputError, match=r"out: holds a propagation with other settings or inputs \(differs in: propagation\.topk\)"):
        propagate_video(frames, first, out, _settings(topk=5), overlay=None, progress=False)
    other = clip[1][0].copy()
    other[20:30, 20:30] = 7
    write_mask(tmp_path / "other.png", other)
    with pytest.raises(PropagateInputError, match=r"differs in: inputs\.mask_sha256"):
        propagate_video(frames, tmp_path / "other.png", out, _settings(), overlay=None, progress=False)
    result = propagate_video(frames, first, out, _settings(topk=5), overlay=None, overwrite=True, progress=False)
    assert (result.resumed, result.computed) == (0, CLIP_FRAMES - 1)


def test_refuses_masks_without_state(clip: tuple[np.ndarray, np.ndarray], clip_dir: Path, tmp_path: Path) -> None:
    write_mask(tmp_path / "out" / "masks" / "00000.png", clip[1][0])
    with pytest.raises(PropagateInputError, match=r"masks: holds masks but no resume state"):
        propagate_video(clip_dir / "frames", clip_dir / "first.png", tmp_path / "out", _settings(), progress=False)


def test_bad_mask_fails_before_any_output(clip_dir: Path, tmp_path: Path) -> None:
    write_mask(tmp_path / "small.png", np.ones((40, 60), np.uint8))
    with pytest.raises(PropagateInputError, match=r"the mask is 60x40 \(W x H\) but the video's frames are 64x48 \(W x H\)"):
        propagate_video(clip_dir / "frames", tmp_path / "small.png", tmp_path / "out", _settings(), progress=False)
    assert not (tmp_path / "out").exists()


def test_mp4_overlay(clip_mp4: Path, clip_dir: Path, tmp_path: Path) -> None:
    if "libx264" not in av.codecs_available:
        pytest.skip("PyAV without libx264")
    out = tmp_path / "out"
    propagate_video(clip_mp4, clip_dir / "first.png", out, _settings(), max_frames=3, progress=False)
    assert (out / "overlay.gif").is_file()
    result = propagate_video(clip_mp4, clip_dir / "first.png", out, _settings(), overlay="mp4", progress=False)
    assert result.overlay == out / "overlay.mp4" and result.resumed == 3
    assert not (out / "overlay.gif").exists()  # the earlier run's overlay would not match summary.json
    with av.open(str(result.overlay)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == CLIP_FRAMES and decoded[0].shape == (*CLIP_SIZE, 3)


def test_mp4_without_libx264_is_a_clear_error(clip_mp4: Path, clip_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "mp4_available", lambda: False)
    with pytest.raises(PropagateInputError, match=r"--mp4: this PyAV build has no libx264 encoder; use --gif"):
        propagate_video(clip_mp4, clip_dir / "first.png", tmp_path / "out", _settings(), overlay="mp4", progress=False)


def test_late_fusion_with_a_semantic_network(clip_dir: Path, tmp_path: Path) -> None:
    settings = _settings(semantic_arch="resnet18", lam=1.75)
    result = propagate_video(clip_dir / "frames", clip_dir / "first.png", tmp_path / "out", settings, max_frames=4,
                             overlay=None, progress=False)
    assert result.computed == 3
    assert result.summary["settings"]["fusion"]["lambda"] == 1.75
    assert result.summary["networks"]["semantic"]["arch"] == "resnet18"


def test_frames_in_memory_do_not_grow_with_the_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every decoded frame is released after its batch: the most alive at once is the same for 10 and 40 frames."""
    alive: set[int] = set()
    peak = [0]
    original = FrameSource.iter_frames

    def tracked(self: FrameSource, **kwargs: object):
        for i, frame in original(self, **kwargs):
            alive.add(id(frame))
            weakref.finalize(frame, alive.discard, id(frame))
            peak[0] = max(peak[0], len(alive))
            yield i, frame

    monkeypatch.setattr(FrameSource, "iter_frames", tracked)
    frames, masks, _ = render_demo_sequence(3, 0, 40, (32, 48))
    peaks = {}
    for n in (10, 40):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        for t in range(n):
            Image.fromarray(frames[t]).save(folder / f"{t:05d}.png")
        write_mask(tmp_path / "first.png", masks[0])
        peak[0] = 0
        propagate_video(folder, tmp_path / "first.png", tmp_path / f"out{n}", _settings(context=2), progress=False)
        peaks[n] = peak[0]
        assert len(list((tmp_path / f"out{n}" / ".resume" / "soft").glob("*.npy"))) <= 2
    assert peaks[10] == peaks[40] <= 4 + 2, peaks  # one batch of 4 frames, plus the frame being decoded
