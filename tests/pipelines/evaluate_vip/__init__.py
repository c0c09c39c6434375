"""Tests of the ``evaluate_vip`` pipeline."""
