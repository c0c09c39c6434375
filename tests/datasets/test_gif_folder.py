"""``GifFolderDataset``: one GIF per name, streamed and atomic, stale GIFs removed, folder always made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError
from PIL import Image

from sfc.datasets.gif_folder import GifFolderDataset


def _frames(n: int, hw: tuple[int, int] = (40, 60), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def test_save_load_round_trip(tmp_path: Path) -> None:
    ds = GifFolderDataset(path=str(tmp_path / "videos"), fps=4, max_side=30)
    assert not ds.exists()
    ds.save({"seq-a": _frames(3), "seq-b": lambda: iter(_frames(2, seed=1)), "group/clip": _frames(2)})
    assert ds.exists()
    loaded = ds.load()
    assert list(loaded) == ["group/clip", "seq-a", "seq-b"]
    with Image.open(loaded["seq-a"]) as im:
        assert (im.n_frames, im.size, im.info["duration"]) == (3, (30, 20), 250)
    with Image.open(loaded["seq-b"]) as im:
        assert im.n_frames == 2


def test_callables_are_called_at_save_time(tmp_path: Path) -> None:
    opened: list[str] = []

    def clip(name: str) -> Iterator[np.ndarray]:
        opened.append(name)
        yield from _frames(2)

    data = {"a": lambda: clip("a"), "b": lambda: clip("b")}
    assert opened == []
    GifFolderDataset(path=str(tmp_path), fps=10, max_side=None).save(data)
    assert opened == ["a", "b"]


def test_stale_gifs_removed_and_empty_save_makes_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    ds = GifFolderDataset(path=str(folder), fps=10, max_side=None)
    ds.save({"old": _frames(2), "kept": _frames(2)})
    (folder / "notes.txt").write_text("not a GIF: left alone")
    ds.save({"kept": _frames(3)})
    assert sorted(p.name for p in folder.iterdir()) == ["kept.gif", "notes.txt"]
    ds.save({})
    assert folder.is_dir() and ds.load() == {}  # an empty folder MLflow can still log


def test_bad_names_and_data(tmp_path: Path) -> None:
    ds = GifFolderDataset(path=str(tmp_path / "v"), fps=10, max_side=None)
    for name in ("", "../escape", "/abs"):
        with pytest.raises(DatasetError, match="relative video name"):
            ds.save({name: _frames(1)})
    with pytest.raises(DatasetError, match="dict of name"):
        ds.save([_frames(1)])  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="not found"):
        GifFolderDataset(path=str(tmp_path / "missing"), fps=10, max_side=None).load()
    assert "max_side" in str(ds._describe())
