"""Figures and overlays for reports: :mod:`.overlay` (masks over frames), :mod:`.figures` (matplotlib figures)."""
