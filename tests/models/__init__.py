"""Tests of sfc.models (backbones, feature extraction, checkpoint loading)."""
