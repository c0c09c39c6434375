"""sfc.metrics."""
