"""JHMDB keypoint propagation (PCK), evaluated as the official CRW protocol (videowalk ``eval_pck.py``).

SFC reports JHMDB with the CRW protocol: the 15 joints of frame 0 are drawn as small Gaussians on
the stride-8 feature grid of the (squashed, 320 x 320) input, propagated through the video like
any other label map, decoded back to coordinates with a top-3 weighted mean, and scored with PCK
(percentage of correct keypoints within ``t`` x 0.6 x the diagonal of the GT joints' box).

* :mod:`.reader`: the dataset layout (``Rename_Images/<class>/<video>/00001.png``,
  ``joint_positions/<class>/<video>/joint_positions.mat``) and both split-file formats; the only
  module that touches JHMDB files.
* :mod:`.labels`: joints -> label maps (``draw_labelmap`` with the official 4 x 4 patch and
  ``int()`` truncation) and soft maps -> joints (top-3 decoding with ``torch.topk``), bit for bit
  the official code at 320 px, generalised to any input size.
* :mod:`.metric`: PCK exactly as ``eval_pck.py`` (visibility from the predicted x, float32
  scaling, box 0.6 x diagonal with its 1e6 / -1 start values, frame 0 skipped, inclusive ``<=``,
  mean of per-joint PCKs), arrays in, numbers out; a joint never scored is NaN instead of the
  official ``ZeroDivisionError``.
* :mod:`.evaluate`: which videos (each validated up front), propagation of frame 0's joints
  through a video (the official ``.dat`` content), and scoring of many videos pooled in list order.

The protocol, its quirks and the golden outputs it is checked against are described in
``shared/golden/pck/README.md`` (tests: ``tests/golden/test_golden_pck.py``). No Kedro or MLflow here.
"""
