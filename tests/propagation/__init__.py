"""Tests of sfc.propagation: the windowed engine, label resampling and golden conformance."""
