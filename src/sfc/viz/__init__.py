"""sfc.viz."""
