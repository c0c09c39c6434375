"""First-frame masks of ``sfc propagate``: id PNGs of every kind and the polygon/box JSON of labelling tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfc.evaluation.davis.reader import DAVIS_PALETTE, write_mask
from sfc.propagate import PropagateInputError, read_first_mask

H, W = 40, 60


def _ids() -> np.ndarray:
    ids = np.zeros((H, W), np.uint8)
    ids[5:15, 5:20] = 2
    ids[20:35, 30:50] = 5
    return ids


def _json(tmp_path: Path, data: object, name: str = "mask.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------- images
def test_palette_png_keeps_object_ids(tmp_path: Path) -> None:
    write_mask(tmp_path / "m.png", _ids())
    mask = read_first_mask(tmp_path / "m.png", (H, W))
    assert mask.format == "palette-png"
    assert mask.object_ids == [2, 5]
    np.testing.assert_array_equal(mask.ids, _ids())


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_greyscale_png_values_are_ids(tmp_path: Path, mode: str) -> None:
    arr = _ids().astype(np.uint16 if mode == "I;16" else np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")  # uint16 -> a 16-bit greyscale PNG
    mask = read_first_mask(tmp_path / "m.png", (H, W))
    assert mask.format == "greyscale-png" and mask.object_ids == [2, 5]
    np.testing.assert_array_equal(mask.ids, _ids())


@pytest.mark.parametrize("kind", ["L", "P", "1"])
def test_binary_png_is_one_object(tmp_path: Path, kind: str) -> None:
    fg = _ids() > 0
    if kind == "1":
        Image.fromarray(fg).convert("1").save(tmp_path / "m.png")
    else:
        img = Image.fromarray((fg * 255).astype(np.uint8), mode="L")
        (img.convert("P") if kind == "P" else img).save(tmp_path / "m.png")
    mask = read_first_mask(tmp_path / "m.png", (H, W))
    assert mask.format == "binary-png" and mask.object_ids == [1]
    np.testing.assert_array_equal(mask.ids, fg.astype(np.uint8))


def test_rgb_png_of_davis_colours_maps_to_palette_ids(tmp_path: Path) -> None:
    Image.fromarray(DAVIS_PALETTE[_ids()]).save(tmp_path / "m.png")
    mask = read_first_mask(tmp_path / "m.png", (H, W))
    assert mask.object_ids == [2, 5]
    np.testing.assert_array_equal(mask.ids, _ids())


def test_rgba_png_single_colour_transparent_background(tmp_path: Path) -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)  # colour everywhere, but only opaque pixels count
    rgba[..., 3] = (_ids() > 0) * 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    mask = read_first_mask(tmp_path / "m.png", (H, W))
    assert mask.format == "binary-png" and mask.object_ids == [1]
    np.testing.assert_array_equal(mask.ids, (_ids() > 0).astype(np.uint8))


def test_rgb_png_of_arbitrary_colours_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:10] = (1, 2, 3)
    rgb[20:] = (4, 5, 6)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    with pytest.raises(PropagateInputError, match=r"m\.png: an RGB mask must use DAVIS palette colours.*2 other colours"):
        read_first_mask(tmp_path / "m.png", (H, W))


def test_png_of_another_size_names_both_sizes(tmp_path: Path) -> None:
    write_mask(tmp_path / "m.png", _ids())
    with pytest.raises(PropagateInputError, match=r"m\.png: the mask is 60x40 \(W x H\) but the video's frames are 64x48"):
        read_first_mask(tmp_path / "m.png", (48, 64))


def test_png_without_object_is_refused(tmp_path: Path) -> None:
    write_mask(tmp_path / "m.png", np.zeros((H, W), np.uint8))
    with pytest.raises(PropagateInputError, match=r"m\.png: expected at least one object.*found none"):
        read_first_mask(tmp_path / "m.png", (H, W))


def test_unreadable_and_missing_masks(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(PropagateInputError, match=r"bad\.png: expected a PNG mask .* unreadable image"):
        read_first_mask(tmp_path / "bad.png", (H, W))
    with pytest.raises(FileNotFoundError, match=r"nope\.png: mask file not found"):
        read_first_mask(tmp_path / "nope.png", (H, W))


# --------------------------------------------------------------------------------------- simple JSON
def test_simple_json_polygon_and_box(tmp_path: Path) -> None:
    path = _json(tmp_path, {"width": W, "height": H, "objects": [
        {"id": 3, "box": [10, 5, 30, 25], "label": "cup"},
        {"id": 1, "polygon": [[40, 10], [50, 10], [50, 20], [40, 20]]},
    ]})
    mask = read_first_mask(path, (H, W))
    assert mask.format == "simple-json"
    assert mask.object_ids == [1, 3]
    assert [o.label for o in mask.objects] == [None, "cup"]
    assert (mask.ids == 3).sum() == 20 * 20  # a box covers x0 <= x < x1
    assert mask.ids[5:25, 10:30].min() == 3
    assert (mask.ids == 1).sum() == 11 * 11  # Pillow fills the polygon's outline too
    assert mask.ids[15, 45] == 1 and mask.ids[15, 35] == 0


def test_simple_json_later_objects_are_drawn_over_earlier(tmp_path: Path) -> None:
    path = _json(tmp_path, {"width": W, "height": H, "objects": [
        {"id": 1, "box": [0, 0, 30, 30]}, {"id": 2, "box": [10, 10, 20, 20]},
    ]})
    mask = read_first_mask(path, (H, W))
    assert mask.ids[15, 15] == 2 and mask.ids[5, 5] == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"width": W, "height": H, "objects": []}, r"expected at least one polygon or box \(simple-json layout\), found none"),
        ({"width": W, "height": H, "objects": [{"id": 1, "box": [100, 100, 120, 120]}]},
         r"object 1 \(objects\[0\]\) covers no pixel"),
        ({"width": W, "height": H, "objects": [{"id": 1, "box": [0, 0, 5, 5]}, {"id": 1, "box": [9, 9, 12, 12]}]},
         r"objects\[1\]: expected a distinct integer id in 1\.\.255, found 1"),
        ({"width": W, "height": H, "objects": [{"id": 1, "polygon": [[0, 0], [5, 5]]}]},
         r"objects\[0\]: expected a polygon of at least 3 \[x, y\] points"),
        ({"width": W, "height": H, "objects": [{"id": 1}]}, r"expected exactly one of 'polygon' or 'box'"),
        ({"width": 99, "height": H, "objects": [{"id": 1, "box": [0, 0, 5, 5]}]},
         r"the mask is 99x40 \(W x H\) but the video's frames are 60x40 \(W x H\)"),
        ({"shapes": []}, r"unknown mask JSON layout: expected COCO .* found an object with keys \['shapes'\]"),
        ([1, 2], r"unknown mask JSON layout.*found a JSON list"),
    ],
)
def test_bad_json_masks(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(PropagateInputError, match=message):
        read_first_mask(_json(tmp_path, data), (H, W))


def test_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(PropagateInputError, match=r"m\.json: expected a JSON file of polygons or boxes, found invalid JSON"):
        read_first_mask(tmp_path / "m.json", (H, W))


# ---------------------------------------------------------------------------------------------- COCO
def _coco(annotations: list[dict], images: list[dict] | None = None) -> dict:
    return {
        "images": images or [{"id": 7, "width": W, "height": H, "file_name": "frame0.jpg"}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "kettle"}],
    }


def test_coco_polygon_bbox_and_rle(tmp_path: Path) -> None:
    rle = np.zeros((H, W), bool)
    rle[30:38, 50:58] = True
    flat = rle.T.ravel()  # column-major, as COCO stores RLE
    change = np.flatnonzero(np.diff(flat.astype(int))) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    data = _coco([
        {"id": 11, "image_id": 7, "category_id": 2, "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15]], "bbox": [5, 5, 20, 10]},
        {"id": 12, "image_id": 7, "category_id": 1, "bbox": [30, 20, 10, 5]},
        {"id": 13, "image_id": 7, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [H, W], "counts": counts}},
    ])
    mask = read_first_mask(_json(tmp_path, data), (H, W))
    assert mask.format == "coco"
    assert mask.object_ids == [1, 2, 3]
    assert [o.label for o in mask.objects] == ["kettle", "cup", "cup"]
    assert mask.objects[0].source == "COCO annotation id 11"
    assert mask.ids[10, 15] == 1
    assert (mask.ids == 2).sum() == 10 * 5 and mask.ids[22, 35] == 2
    np.testing.assert_array_equal(mask.ids == 3, rle)


def test_coco_takes_the_first_annotated_image(tmp_path: Path) -> None:
    images = [{"id": 1, "width": W, "height": H}, {"id": 2, "width": W, "height": H}, {"id": 3, "width": W, "height": H}]
    data = _coco([
        {"id": 1, "image_id": 3, "category_id": 1, "bbox": [0, 0, 5, 5]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20, 20, 5, 5]},
    ], images)
    mask = read_first_mask(_json(tmp_path, data), (H, W))
    assert mask.object_ids == [1] and mask.ids[22, 22] == 1 and mask.ids[2, 2] == 0


def test_coco_errors(tmp_path: Path) -> None:
    with pytest.raises(PropagateInputError, match=r"compressed COCO RLE .* not supported"):
        read_first_mask(_json(tmp_path, _coco([{"id": 1, "image_id": 7, "segmentation": {"size": [H, W], "counts": "abc"}}])), (H, W))
    with pytest.raises(PropagateInputError, match=r"COCO JSON: expected annotations .* found 0 annotation"):
        read_first_mask(_json(tmp_path, _coco([])), (H, W))
    big = _coco([{"id": 1, "image_id": 7, "bbox": [0, 0, 5, 5]}], [{"id": 7, "width": 1280, "height": 720}])
    with pytest.raises(PropagateInputError, match=r"the mask is 1280x720 \(W x H\) but the video's frames are 60x40"):
        read_first_mask(_json(tmp_path, big), (H, W))


# -------------------------------------------------------------------------------------- Label Studio
def _ls_result(kind: str, value: dict, rid: str, size: tuple[int, int] | None = (H, W)) -> dict:
    out = {"id": rid, "type": kind, "from_name": "label", "to_name": "image", "value": value}
    if size is not None:
        out.update(original_height=size[0], original_width=size[1], image_rotation=0)
    return out


def test_label_studio_polygon_and_rectangle(tmp_path: Path) -> None:
    # percent of the image: x * W / 100, y * H / 100
    poly = {"points": [[50, 25], [80, 25], [80, 50], [50, 50]], "closed": True, "polygonlabels": ["cup"]}
    rect = {"x": 10, "y": 50, "width": 25, "height": 25, "rotation": 0, "rectanglelabels": ["kettle"]}
    export = [{"id": 1, "data": {"image": "/data/upload/frame0.jpg"}, "annotations": [
        {"id": 9, "was_cancelled": False, "result": [
            _ls_result("polygonlabels", poly, "a"), {"id": "t", "type": "textarea", "value": {"text": ["x"]}},
            _ls_result("rectanglelabels", rect, "b"),
        ]},
    ]}]
    mask = read_first_mask(_json(tmp_path, export), (H, W))
    assert mask.format == "label-studio"
    assert [(o.id, o.label) for o in mask.objects] == [(1, "cup"), (2, "kettle")]
    assert mask.ids[15, 40] == 1 and mask.ids[5, 40] == 0  # polygon x 30..48, y 10..20
    assert (mask.ids == 2).sum() == 15 * 10  # rectangle x 6..21, y 20..30
    assert mask.ids[25, 10] == 2


def test_label_studio_rotated_rectangle_turns_about_its_top_left_corner(tmp_path: Path) -> None:
    rect = {"x": 50, "y": 25, "width": 20, "height": 25, "rotation": 90}  # 12 x 10 px, turned clockwise
    mask = read_first_mask(_json(tmp_path, {"result": [_ls_result("rectangle", rect, "r")]}), (H, W))
    assert mask.ids[15, 25] == 1  # rotated: left of x = 30, below y = 10
    assert mask.ids[15, 36] == 0  # where the unrotated box would be


def test_label_studio_without_original_size_uses_the_frames(tmp_path: Path) -> None:
    rect = {"x": 0, "y": 0, "width": 50, "height": 50}
    mask = read_first_mask(_json(tmp_path, [{"annotations": [{"result": [_ls_result("rectanglelabels", rect, "r", None)]}]}]), (H, W))
    assert (mask.ids == 1).sum() == (H // 2) * (W // 2)


def test_label_studio_without_polygon_or_box(tmp_path: Path) -> None:
    export = [{"annotations": [{"result": [{"id": "x", "type": "brushlabels", "value": {"rle": [1, 2]}}]}]}]
    with pytest.raises(PropagateInputError, match=r"Label Studio JSON: expected a polygon or box .* found result types brushlabels"):
        read_first_mask(_json(tmp_path, export), (H, W))
    with pytest.raises(PropagateInputError, match=r"found no annotation result"):
        read_first_mask(_json(tmp_path, [{"annotations": []}]), (H, W))


def test_same_mask_same_hash_whatever_the_format(tmp_path: Path) -> None:
    ids = np.zeros((H, W), np.uint8)
    ids[5:25, 10:30] = 1
    write_mask(tmp_path / "m.png", ids)
    box = _json(tmp_path, {"width": W, "height": H, "objects": [{"id": 1, "box": [10, 5, 30, 25]}]})
    assert read_first_mask(tmp_path / "m.png").sha256() == read_first_mask(box).sha256()
