"""Tests of the ``evaluate_jhmdb`` pipeline."""
