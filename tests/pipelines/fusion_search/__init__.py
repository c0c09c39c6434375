"""Tests of the ``fusion_search`` pipeline (tiny CPU settings on the ``tiny_davis`` fixture)."""
