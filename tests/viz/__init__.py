"""Tests of :mod:`sfc.viz`: correspondence maps, GIFs, report figures."""
