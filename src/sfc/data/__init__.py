"""sfc.data."""
