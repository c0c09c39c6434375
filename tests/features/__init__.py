"""Tests of :mod:`sfc.features`."""
