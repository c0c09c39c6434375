"""DAVIS-2017 semi-supervised video object segmentation, evaluated as the official code does.

* :mod:`.reader`: the dataset layout (frames, palette annotations, split files) and mask writing;
  the only module that touches DAVIS files.
* :mod:`.metric`: region similarity J and boundary measure F, their statistics and the global
  means, numerically equal to ``davis2017-evaluation`` (arrays in, numbers out).
* :mod:`.evaluate`: which sequences (validated up front), propagation of the first-frame masks,
  scoring of a results folder and the official CSV tables.
* :mod:`.search`: scoring a grid of late-fusion settings on DAVIS from two feature streams.

The protocol and its quirks are described in docs/protocol.md.
"""
