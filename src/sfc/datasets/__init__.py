"""sfc.datasets."""
