"""Losses of SFC training: the dense positive-radius loss of the FC network (one loss per module)."""

from sfc.losses.dense_positive import bin_diagonal, cell_centres, dense_positive_loss, positive_mask

__all__ = ["bin_diagonal", "cell_centres", "dense_positive_loss", "positive_mask"]
