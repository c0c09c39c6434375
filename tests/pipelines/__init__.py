"""Tests of the Kedro pipelines."""
