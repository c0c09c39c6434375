"""Label propagation (CRW/SFC protocol): the windowed streaming engine and label resampling."""

from sfc.propagation.engine import Propagator, context_frame_indices, iter_propagate, propagate

__all__ = ["Propagator", "context_frame_indices", "iter_propagate", "propagate"]
