"""Tests of the DAVIS-2017 reader/writer in :mod:`sfc.evaluation.davis.reader`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sfc.atomic
from sfc.evaluation.davis.reader import (
    DAVIS_PALETTE,
    DavisFormatError,
    DavisSequence,
    iter_frames,
    list_frames,
    load_sequence,
    onehot,
    read_annotations,
    read_frame,
    read_mask,
    read_split,
    resolve_sequences,
    write_mask,
)

REAL_DAVIS = Path(__file__).resolve().parents[3].parent / "shared" / "realdata" / "davis"


@pytest.fixture()
def davis_copy(tiny_davis: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny demo dataset (safe to corrupt)."""
    dst = tmp_path / "davis"
    shutil.copytree(tiny_davis, dst)
    return dst


def _jpg(root: Path, seq: str, frame: str) -> Path:
    return root / "JPEGImages" / "480p" / seq / f"{frame}.jpg"


def _png(root: Path, seq: str, frame: str) -> Path:
    return root / "Annotations" / "480p" / seq / f"{frame}.png"


# ----------------------------------------------------------------------------------------- palette / masks


def test_palette_is_the_voc_davis_palette() -> None:
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    assert DAVIS_PALETTE[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in DAVIS_PALETTE.tolist()}) == 256


def test_write_read_mask_round_trip_keeps_palette(tmp_path: Path) -> None:
    mask = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "nested" / "dir" / "00000.png"
    write_mask(path, mask)
    assert np.array_equal(read_mask(path), mask)
    with Image.open(path) as img:
        assert img.mode == "P"
        palette = np.asarray(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
    assert np.array_equal(palette[:256], DAVIS_PALETTE)
    # colours seen by a viewer are the DAVIS colours
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert np.array_equal(rgb, DAVIS_PALETTE[mask])


def test_write_mask_accepts_bool_and_wider_ints(tmp_path: Path) -> None:
    write_mask(tmp_path / "a.png", np.eye(4, dtype=bool))
    assert np.array_equal(read_mask(tmp_path / "a.png"), np.eye(4, dtype=np.uint8))
    write_mask(tmp_path / "b.png", np.full((3, 5), 7, dtype=np.int64))
    assert read_mask(tmp_path / "b.png").tolist() == [[7] * 5] * 3


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (np.zeros((4, 4, 3), np.uint8), "shape"),
        (np.zeros((4, 4), np.float32), "dtype"),
        (np.full((4, 4), 300, np.int32), "[0, 255]"),
    ],
)
def test_write_mask_rejects_bad_masks(tmp_path: Path, bad: np.ndarray, needle: str) -> None:
    target = tmp_path / "bad.png"
    with pytest.raises(DavisFormatError, match="bad.png") as err:
        write_mask(target, bad)
    assert needle in str(err.value)
    assert not target.exists()


def test_read_mask_accepts_greyscale(tmp_path: Path) -> None:
    ids = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    Image.fromarray(ids).save(tmp_path / "grey.png")  # mode 'L'
    assert np.array_equal(read_mask(tmp_path / "grey.png"), ids)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_read_mask_rejects_colour_png(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"colour_{mode}.png"
    Image.new(mode, (8, 6)).save(path)
    with pytest.raises(DavisFormatError) as err:
        read_mask(path)
    msg = str(err.value)
    assert str(path) in msg and "palette" in msg and mode in msg


def test_read_mask_missing_or_garbage(tmp_path: Path) -> None:
    with pytest.raises(DavisFormatError, match="nope.png"):
        read_mask(tmp_path / "nope.png")
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    with pytest.raises(DavisFormatError, match="garbage.png"):
        read_mask(tmp_path / "garbage.png")


# ----------------------------------------------------------------------------------------- atomic write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def test_write_mask_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "m.png"
    write_mask(target, np.ones((5, 5), np.uint8))
    write_mask(target, np.full((5, 5), 2, np.uint8))  # overwrite in place
    assert read_mask(target).max() == 2
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


def test_write_mask_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exploding_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG partial")  # type: ignore[arg-type]
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", exploding_save)
    new_target = tmp_path / "new.png"
    with pytest.raises(OSError, match="simulated"):
        write_mask(new_target, np.ones((5, 5), np.uint8))
    assert not new_target.exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    existing = tmp_path / "old.png"
    write_mask(existing, np.full((5, 5), 3, np.uint8))
    monkeypatch.setattr(Image.Image, "save", exploding_save)
    with pytest.raises(OSError, match="simulated"):
        write_mask(existing, np.ones((5, 5), np.uint8))
    monkeypatch.undo()
    assert read_mask(existing).max() == 3  # previous content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]


def test_write_mask_failure_at_replace_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise OSError("replace failed (simulated)")

    monkeypatch.setattr(sfc.atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        write_mask(tmp_path / "x.png", np.ones((5, 5), np.uint8))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- splits


def test_read_split_and_resolve_sequences(davis_copy: Path) -> None:
    assert read_split(davis_copy, "val") == ["demo-00", "demo-01"]
    assert resolve_sequences(davis_copy, "val", None) == ["demo-00", "demo-01"]
    assert resolve_sequences(davis_copy, "val", ["demo-01"]) == ["demo-01"]


def test_read_split_skips_blank_lines_and_duplicates(davis_copy: Path) -> None:
    split = davis_copy / "ImageSets" / "2017" / "mine.txt"
    split.write_text("\n demo-01 \n\ndemo-00\ndemo-01\n", encoding="utf-8")
    assert read_split(davis_copy, "mine") == ["demo-01", "demo-00"]


def test_read_split_missing_file(davis_copy: Path) -> None:
    with pytest.raises(DavisFormatError) as err:
        read_split(davis_copy, "test-dev")
    msg = str(err.value)
    assert "test-dev.txt" in msg and "not found" in msg and "val" in msg  # lists available splits


def test_read_split_empty_file(davis_copy: Path) -> None:
    split = davis_copy / "ImageSets" / "2017" / "val.txt"
    split.write_text("\n   \n", encoding="utf-8")
    with pytest.raises(DavisFormatError) as err:
        read_split(davis_copy, "val")
    assert str(split) in str(err.value) and "no sequence names" in str(err.value)


def test_resolve_sequences_lists_every_unknown_name(davis_copy: Path) -> None:
    with pytest.raises(DavisFormatError) as err:
        resolve_sequences(davis_copy, "val", ["demo-00", "bear", "camel"])
    msg = str(err.value)
    assert "'bear'" in msg and "'camel'" in msg and "'demo-00'" not in msg.split("found:")[0]
    assert "demo-01" in msg  # shows what is available
    with pytest.raises(DavisFormatError, match="empty sequence list"):
        resolve_sequences(davis_copy, "val", [])


def test_resolve_sequences_unknown_name_in_split(davis_copy: Path) -> None:
    (davis_copy / "ImageSets" / "2017" / "val.txt").write_text("demo-00\nghost\n", encoding="utf-8")
    with pytest.raises(DavisFormatError, match="ghost"):
        resolve_sequences(davis_copy, "val", None)


# ----------------------------------------------------------------------------------------- frames


def test_list_frames_sorts_numerically(tmp_path: Path) -> None:
    folder = tmp_path / "JPEGImages" / "480p" / "s"
    folder.mkdir(parents=True)
    for stem in ["10", "2", "1"]:
        Image.new("RGB", (4, 4)).save(folder / f"{stem}.jpg")
    (folder / "notes.txt").write_text("ignored")
    assert list_frames(tmp_path, "s") == ["1", "2", "10"]


def test_list_frames_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DavisFormatError, match="not found"):
        list_frames(tmp_path, "nothing")
    (tmp_path / "JPEGImages" / "480p" / "empty").mkdir(parents=True)
    with pytest.raises(DavisFormatError, match=r"empty.*found none"):
        list_frames(tmp_path, "empty")


def test_read_frame_is_rgb_uint8(tiny_davis: Path) -> None:
    frame = read_frame(_jpg(tiny_davis, "demo-00", "00000"))
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8


def test_read_frame_garbage_and_truncated(davis_copy: Path) -> None:
    garbage = _jpg(davis_copy, "demo-00", "00001")
    garbage.write_bytes(b"\x00garbage, not a jpeg" * 10)
    with pytest.raises(DavisFormatError) as err:
        read_frame(garbage)
    assert str(garbage) in str(err.value)

    truncated = _jpg(davis_copy, "demo-00", "00002")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DavisFormatError) as err:
        read_frame(truncated)
    assert str(truncated) in str(err.value) and "truncated" in str(err.value)

    with pytest.raises(DavisFormatError, match="not found"):
        read_frame(davis_copy / "missing.jpg")


# ----------------------------------------------------------------------------------------- sequences


def test_load_sequence_and_iter_frames(tiny_davis: Path) -> None:
    seq = load_sequence(tiny_davis, "demo-00")
    assert isinstance(seq, DavisSequence)
    assert seq.name == "demo-00" and seq.root == tiny_davis
    assert seq.frame_names == [f"{t:05d}" for t in range(6)]
    assert seq.frame_paths == [_jpg(tiny_davis, "demo-00", n) for n in seq.frame_names]
    assert seq.size == (64, 96) and len(seq) == seq.num_frames == 6
    assert seq.first_mask.shape == (64, 96) and seq.first_mask.dtype == np.uint8
    assert seq.object_ids == sorted(int(i) for i in np.unique(seq.first_mask) if i > 0)
    assert len(seq.object_ids) >= 2
    frames = list(iter_frames(seq))
    assert len(frames) == 6 and all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in frames)


def test_load_sequence_max_frames(tiny_davis: Path) -> None:
    seq = load_sequence(tiny_davis, "demo-01", max_frames=3)
    assert seq.frame_names == ["00000", "00001", "00002"] and len(list(iter_frames(seq))) == 3
    assert len(load_sequence(tiny_davis, "demo-01", max_frames=100).frame_names) == 6
    with pytest.raises(DavisFormatError, match="max_frames >= 1"):
        load_sequence(tiny_davis, "demo-01", max_frames=0)


def test_load_sequence_missing_sequence_folder(tiny_davis: Path) -> None:
    with pytest.raises(DavisFormatError) as err:
        load_sequence(tiny_davis, "bear")
    assert str(tiny_davis / "JPEGImages" / "480p" / "bear") in str(err.value)


def test_load_sequence_missing_first_annotation(davis_copy: Path) -> None:
    expected = _png(davis_copy, "demo-00", "00000")
    expected.unlink()
    with pytest.raises(DavisFormatError) as err:
        load_sequence(davis_copy, "demo-00")
    assert str(expected) in str(err.value) and "not found" in str(err.value)


def test_load_sequence_frame_mask_size_mismatch(davis_copy: Path) -> None:
    mask_path = _png(davis_copy, "demo-00", "00000")
    write_mask(mask_path, np.ones((32, 48), np.uint8))
    with pytest.raises(DavisFormatError) as err:
        load_sequence(davis_copy, "demo-00")
    msg = str(err.value)
    assert str(mask_path) in msg and str(_jpg(davis_copy, "demo-00", "00000")) in msg
    assert "(64, 96)" in msg and "(32, 48)" in msg


def test_load_sequence_rgb_first_mask(davis_copy: Path) -> None:
    mask_path = _png(davis_copy, "demo-00", "00000")
    Image.new("RGB", (96, 64), (128, 0, 0)).save(mask_path)
    with pytest.raises(DavisFormatError) as err:
        load_sequence(davis_copy, "demo-00")
    assert str(mask_path) in str(err.value) and "palette" in str(err.value) and "RGB" in str(err.value)


def test_load_sequence_first_mask_without_objects(davis_copy: Path) -> None:
    mask_path = _png(davis_copy, "demo-01", "00000")
    write_mask(mask_path, np.zeros((64, 96), np.uint8))
    with pytest.raises(DavisFormatError) as err:
        load_sequence(davis_copy, "demo-01")
    assert str(mask_path) in str(err.value) and "at least one object" in str(err.value)


def test_load_sequence_unreadable_first_frame(davis_copy: Path) -> None:
    bad = _jpg(davis_copy, "demo-00", "00000")
    bad.write_bytes(b"garbage")
    with pytest.raises(DavisFormatError, match=str(bad)):
        load_sequence(davis_copy, "demo-00")


def test_iter_frames_later_frame_size_mismatch(davis_copy: Path) -> None:
    seq = load_sequence(davis_copy, "demo-00")
    odd = _jpg(davis_copy, "demo-00", "00003")
    Image.new("RGB", (50, 40)).save(odd)
    frames = iter_frames(seq)
    for _ in range(3):
        next(frames)
    with pytest.raises(DavisFormatError) as err:
        next(frames)
    msg = str(err.value)
    assert str(odd) in msg and "(64, 96)" in msg and "(40, 50)" in msg


def test_iter_frames_later_frame_truncated(davis_copy: Path) -> None:
    seq = load_sequence(davis_copy, "demo-01")
    bad = _jpg(davis_copy, "demo-01", "00004")
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DavisFormatError, match=str(bad)):
        list(iter_frames(seq))


def test_read_annotations(tiny_davis: Path) -> None:
    masks = read_annotations(tiny_davis, "demo-00")
    assert masks.shape == (6, 64, 96) and masks.dtype == np.uint8
    seq = load_sequence(tiny_davis, "demo-00")
    assert np.array_equal(masks[0], seq.first_mask)
    sub = read_annotations(tiny_davis, "demo-00", ["00002", "00004"])
    assert np.array_equal(sub, masks[[2, 4]])


def test_read_annotations_missing_frame_and_size_mismatch(davis_copy: Path) -> None:
    with pytest.raises(DavisFormatError, match="00099.png"):
        read_annotations(davis_copy, "demo-00", ["00000", "00099"])
    odd = _png(davis_copy, "demo-00", "00003")
    write_mask(odd, np.zeros((10, 10), np.uint8))
    with pytest.raises(DavisFormatError, match=str(odd)):
        read_annotations(davis_copy, "demo-00")
    with pytest.raises(DavisFormatError, match="annotation folder not found"):
        read_annotations(davis_copy, "nothing")


# ----------------------------------------------------------------------------------------- onehot


def test_onehot() -> None:
    mask = np.array([[0, 1, 2], [3, 7, 2]], dtype=np.uint8)
    oh = onehot(mask, [2, 1, 3])
    assert oh.shape == (2, 3, 4) and oh.dtype == np.float32
    assert np.array_equal(oh.sum(-1), np.ones((2, 3), np.float32))
    assert oh[0, 2, 1] == 1 and oh[0, 1, 2] == 1 and oh[1, 0, 3] == 1
    assert oh[1, 1, 0] == 1  # id 7 is not tracked -> background
    assert oh[0, 0, 0] == 1
    assert np.array_equal(onehot(mask, []), np.ones((2, 3, 1), np.float32))
    for bad in ([0, 1], [1, 1], [-2]):
        with pytest.raises(DavisFormatError, match="distinct object ids > 0"):
            onehot(mask, bad)
    with pytest.raises(DavisFormatError, match="shape"):
        onehot(np.zeros((2, 2, 2)), [1])


# ----------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not REAL_DAVIS.is_dir(), reason=f"real DAVIS subset not present at {REAL_DAVIS}")
def test_real_davis_subset() -> None:
    names = resolve_sequences(REAL_DAVIS, "val", None)
    assert names and all(isinstance(n, str) for n in names)
    seq = load_sequence(REAL_DAVIS, names[0], max_frames=3)
    assert seq.size == (480, 854)
    assert seq.object_ids and all(i > 0 for i in seq.object_ids)
    frames = list(iter_frames(seq))
    assert len(frames) == 3 and frames[0].shape == (480, 854, 3)
    masks = read_annotations(REAL_DAVIS, names[0], seq.frame_names)
    assert masks.shape == (3, 480, 854) and np.array_equal(masks[0], seq.first_mask)
    with Image.open(seq.annotation_path(seq.frame_names[0])) as img:
        assert img.mode == "P"
        palette = np.asarray(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
    n = min(len(palette), 256)
    assert np.array_equal(palette[:n], DAVIS_PALETTE[:n])
    for name in names:  # every listed sequence validates (cheap: frame 0 + its mask only)
        assert load_sequence(REAL_DAVIS, name, max_frames=1).object_ids
