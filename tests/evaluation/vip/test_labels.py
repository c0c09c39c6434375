"""Tests of VIP label resizing, encoding and decoding (:mod:`sfc.evaluation.vip.labels`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sfc.evaluation.vip.labels import decode_parts, encode_parts, nearest_indices, nearest_resize


def _pillow_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each destination pixel, read back from Pillow's NEAREST resize of an index ramp."""
    ramp = Image.fromarray(np.arange(src, dtype=np.int32)[None, :])  # mode "I"
    return np.asarray(ramp.resize((dst, 1), Image.Resampling.NEAREST))[0].astype(np.int64)


def test_nearest_indices_equal_pillow_on_many_random_size_pairs() -> None:
    rng = np.random.default_rng(0)
    pairs = [(int(a), int(b)) for a, b in rng.integers(1, 1200, size=(1500, 2))]
    pairs += [(64, 458), (458, 64), (500, 300), (300, 500), (1, 7), (7, 1), (3, 3), (480, 854), (854, 560)]
    for src, dst in pairs:
        np.testing.assert_array_equal(nearest_indices(src, dst), _pillow_indices(src, dst), err_msg=f"{src} -> {dst}")


def test_closed_form_differs_where_the_readme_says() -> None:
    # README: floor((i + 0.5) * src / dst) is not Pillow's rule, e.g. 64 -> 458 rows at i = 343.
    i = 343
    assert nearest_indices(64, 458)[i] == _pillow_indices(64, 458)[i]
    assert nearest_indices(64, 458)[i] != int(np.floor((i + 0.5) * 64 / 458))


def test_nearest_resize_equals_pillow_on_label_images() -> None:
    rng = np.random.default_rng(1)
    for _ in range(150):
        h, w, oh, ow = (int(v) for v in rng.integers(1, 160, size=4))
        labels = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        ours = nearest_resize(labels, (oh, ow))
        pil = np.asarray(Image.fromarray(labels).resize((ow, oh), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(ours, pil, err_msg=f"{(h, w)} -> {(oh, ow)}")
        assert ours.dtype == np.uint8


def test_nearest_resize_identity_and_errors() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = nearest_resize(labels, (3, 4))
    np.testing.assert_array_equal(out, labels)
    assert out is not labels
    with pytest.raises(ValueError, match=r"expected a \(H, W\) label image"):
        nearest_resize(np.zeros((2, 2, 3), np.uint8), (4, 4))
    with pytest.raises(ValueError, match="sizes >= 1"):
        nearest_indices(0, 3)


def test_encode_parts_channels_are_the_sorted_present_ids_void_is_zero() -> None:
    labels = np.array([[0, 0, 13, 13], [2, 255, 13, 5], [2, 2, 255, 5]], np.uint8)
    onehot, ids = encode_parts(labels, None)
    assert ids.dtype == np.uint8 and ids.tolist() == [0, 2, 5, 13]
    assert onehot.dtype == np.float32 and onehot.shape == (3, 4, 4)
    np.testing.assert_array_equal(onehot.sum(-1), (labels != 255).astype(np.float32))
    np.testing.assert_array_equal(ids[onehot.argmax(-1)][labels != 255], labels[labels != 255])


def test_encode_parts_without_background_has_no_background_channel() -> None:
    onehot, ids = encode_parts(np.array([[4, 4], [8, 255]], np.uint8), None)
    assert ids.tolist() == [4, 8] and onehot.shape == (2, 2, 2)


def test_encode_parts_resizes_with_nearest_never_inventing_ids() -> None:
    rng = np.random.default_rng(2)
    labels = rng.choice(np.array([0, 2, 13, 14, 255], np.uint8), size=(30, 44))
    onehot, ids = encode_parts(labels, (64, 64))
    assert onehot.shape == (64, 64, len(ids))
    resized = nearest_resize(labels, (64, 64))
    assert set(np.unique(resized).tolist()) <= {0, 2, 13, 14, 255}  # a bilinear resize would invent 1, 3, ...
    np.testing.assert_array_equal(onehot.sum(-1), (resized != 255).astype(np.float32))
    np.testing.assert_array_equal(ids[onehot.argmax(-1)][resized != 255], resized[resized != 255])


def test_encode_parts_errors() -> None:
    with pytest.raises(ValueError, match=r"found \[20, 100\]"):
        encode_parts(np.array([[0, 20], [100, 255]], np.uint8), None)
    with pytest.raises(ValueError, match="only void"):
        encode_parts(np.full((2, 2), 255, np.uint8), None)
    with pytest.raises(ValueError, match=r"\(H, W\) part ids"):
        encode_parts(np.zeros((2, 2, 1), np.uint8), None)


def test_encode_decode_round_trip_same_size() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 2, 4, 8, 13, 19], np.uint8), size=(17, 23))
    onehot, ids = encode_parts(labels, None)
    np.testing.assert_array_equal(decode_parts(torch.from_numpy(onehot), ids, (17, 23)), labels)
    np.testing.assert_array_equal(decode_parts(onehot, ids, (17, 23)), labels)  # numpy in, too


def test_decode_twice_the_size_is_nearest_upsampling() -> None:
    # Bilinear x2 (half-pixel centres) of a one-hot map gives the nearest source pixel weight >= 9/16.
    rng = np.random.default_rng(4)
    labels = rng.choice(np.array([0, 5, 9, 16, 17], np.uint8), size=(8, 8))
    onehot, ids = encode_parts(labels, None)
    out = decode_parts(onehot, ids, (16, 16))
    assert out.dtype == np.uint8 and out.shape == (16, 16)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(labels, 2, 0), 2, 1))


def test_decode_ties_go_to_the_first_channel_and_shape_is_checked() -> None:
    soft = torch.full((2, 2, 3), 0.5)
    np.testing.assert_array_equal(decode_parts(soft, np.array([4, 8, 13], np.uint8), (4, 4)), np.full((4, 4), 4))
    with pytest.raises(ValueError, match="K = 2 channels"):
        decode_parts(soft, np.array([4, 8], np.uint8), (4, 4))
