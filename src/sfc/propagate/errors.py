"""The one error type of :mod:`sfc.propagate`: bad inputs, named with what was expected and found."""

from __future__ import annotations

__all__ = ["PropagateInputError"]


class PropagateInputError(ValueError):
    """A video, frame folder, mask or output folder that cannot be used as given.

    The message names the file, what was expected and what was found; ``sfc propagate`` prints it
    on one line and exits with code 2.
    """
