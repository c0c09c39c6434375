"""Tests of sfc.training: config, data, resume state, loop, DDP, script form, schedules."""
