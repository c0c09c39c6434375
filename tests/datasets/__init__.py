"""Tests of the custom Kedro datasets in :mod:`sfc.datasets`."""
