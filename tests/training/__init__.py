"""Tests of sfc.training (schedules and the FC trainer)."""
