"""Tests of sfc.data (DAVIS I/O and the demo dataset generator)."""
