"""Tests of the ``extract_frames`` pipeline."""
