"""sfc.losses."""
