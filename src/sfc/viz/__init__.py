"""Figures and overlays for reports.

* :mod:`.overlay`: label maps blended over frames (DAVIS and human-part palettes);
* :mod:`.figures`: matplotlib figures (overlay grids, skeletons, fusion heatmap, per-joint / per-class bars);
* :mod:`.correspondence`: similarity maps of query points between two frames (SFC Fig. 5);
* :mod:`.video`: animated GIFs of label maps over frames, streamed and written atomically.
"""
