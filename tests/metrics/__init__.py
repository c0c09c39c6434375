"""Tests of sfc.metrics."""
