"""Tests of sfc.losses (the dense positive-radius loss)."""
