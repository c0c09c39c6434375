"""Propagate a first-frame mask through any video: the library behind ``sfc propagate``.

Files in, files out, around the propagation engine (:mod:`sfc.propagation`, which never reads a
file) and the benchmarks' front door (:mod:`sfc.evaluation.common`):

* :mod:`~sfc.propagate.sources`: a video file (PyAV) or a folder of frames, decoded one frame at a time;
* :mod:`~sfc.propagate.masks`: the first-frame mask from a PNG (palette, greyscale ids, binary,
  DAVIS colours) or a polygon/box JSON (COCO, Label Studio, the simple form documented there);
* :mod:`~sfc.propagate.settings`: the settings, read from the project's ``conf/base/parameters.yml``
  (the only place defaults live) with command-line overrides on top;
* :mod:`~sfc.propagate.state`: the resume state of an output folder (settings key, soft labels of
  the last m frames);
* :mod:`~sfc.propagate.outputs`: the overlay MP4 writer and the summary;
* :mod:`~sfc.propagate.run`: :func:`propagate_video`, the streaming loop that ties them together.

Memory is bounded by the context window m, never by the video length. See docs/propagate.md.
No Kedro or MLflow here.
"""

from __future__ import annotations

from sfc.propagate.errors import PropagateInputError
from sfc.propagate.masks import FirstMask, ObjectInfo, read_first_mask
from sfc.propagate.run import PropagateResult, propagate_video
from sfc.propagate.settings import PropagateSettings, load_settings, project_parameters_path
from sfc.propagate.sources import FrameSource, open_frames

__all__ = [
    "FirstMask",
    "FrameSource",
    "ObjectInfo",
    "PropagateInputError",
    "PropagateResult",
    "PropagateSettings",
    "load_settings",
    "open_frames",
    "project_parameters_path",
    "propagate_video",
    "read_first_mask",
]
