"""Per-joint (JHMDB) and per-class (VIP) bar charts: one bar per row, in table order, values annotated."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from sfc.evaluation.jhmdb.reader import JOINTS
from sfc.evaluation.vip.evaluate import per_class_table
from sfc.evaluation.vip.reader import N_CLASSES
from sfc.viz.figures import per_class_bar_chart, per_joint_bar_chart
from sfc.viz.overlay import PART_PALETTE


def _bars(fig: plt.Figure) -> list[Rectangle]:
    (ax,) = fig.axes
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _per_joint(n: int = len(JOINTS)) -> pd.DataFrame:
    """The table ``evaluate_jhmdb`` writes (``score_videos``): joint, scored, PCK_0.1 ... PCK_0.5."""
    rng = np.random.default_rng(0)
    pck = np.sort(rng.uniform(0, 100, (n, 5)), axis=1)
    table = pd.DataFrame({"joint": list(JOINTS)[:n], "scored": rng.integers(1, 50, n)})
    for i, t in enumerate(("0.1", "0.2", "0.3", "0.4", "0.5")):
        table[f"PCK_{t}"] = pck[:, i]
    return table


def test_per_joint_one_bar_per_row_in_table_order() -> None:
    table = _per_joint()
    table.loc[3, "PCK_0.1"] = np.nan  # a joint never scored
    fig = per_joint_bar_chart(table)
    try:
        bars = _bars(fig)
        assert len(bars) == len(table)
        (ax,) = fig.axes
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == list(table["joint"])
        # first row on top: bar y decreasing on screen means increasing data y with an inverted axis
        assert [b.get_y() + b.get_height() / 2 for b in bars] == pytest.approx(list(range(len(table))))
        assert ax.get_ylim()[0] > ax.get_ylim()[1]
        widths = [b.get_width() for b in bars]
        expected = table["PCK_0.1"].fillna(0).to_numpy()
        assert widths == pytest.approx(list(expected))
        texts = [t.get_text() for t in ax.texts]
        assert f"{table.loc[0, 'PCK_0.1']:.1f}" in texts and "not scored" in texts
        assert "PCK@0.1" in ax.get_title(loc="left")
        mean = np.nanmean(table["PCK_0.1"])
        assert ax.get_legend().get_texts()[0].get_text() == f"mean {mean:.1f}"
    finally:
        plt.close(fig)


def test_per_joint_other_metric_and_missing_column() -> None:
    fig = per_joint_bar_chart(_per_joint(4), metric="PCK_0.2")
    try:
        assert len(_bars(fig)) == 4 and "PCK@0.2" in fig.axes[0].get_title(loc="left")
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="PCK_0.7"):
        per_joint_bar_chart(_per_joint(), metric="PCK_0.7")


def test_per_class_one_bar_per_row_with_palette_colours() -> None:
    hist = np.diag(np.arange(N_CLASSES) * 10).astype(np.int64)  # class 0 absent: NaN IoU
    hist[5, 6] = 7
    table = per_class_table(hist)
    fig = per_class_bar_chart(table)
    try:
        bars = _bars(fig)
        assert len(bars) == len(table) == N_CLASSES
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_yticklabels()] == list(table["name"])
        for i, bar in enumerate(bars):
            np.testing.assert_allclose(bar.get_facecolor()[:3], PART_PALETTE[i] / 255, atol=1e-6)
        texts = [t.get_text() for t in ax.texts]
        assert texts.count("n/a (class absent)") == int(table["IoU"].isna().sum()) == 1
        assert f"{table.loc[5, 'IoU']:.1f}" in texts
        assert ax.get_legend().get_texts()[0].get_text() == f"mIoU {np.nanmean(table['IoU']):.1f}"
    finally:
        plt.close(fig)


def test_per_class_from_the_csv_round_trip(tmp_path) -> None:
    """The node reads per_class.csv back (``float_format='%.4f'``, NaN as empty)."""
    table = per_class_table(np.diag(np.arange(N_CLASSES)).astype(np.int64))
    table.to_csv(tmp_path / "per_class.csv", index=False, float_format="%.4f")
    fig = per_class_bar_chart(pd.read_csv(tmp_path / "per_class.csv"))
    try:
        assert len(_bars(fig)) == N_CLASSES
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="name"):
        per_class_bar_chart(table.drop(columns="name"))
