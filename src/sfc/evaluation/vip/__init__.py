"""VIP video human-part propagation (mIoU), evaluated as the official CRW ``eval_vip.py`` does.

* :mod:`.reader`: the VIP_Fine layout (frames, ``Category_ids`` gray-id annotations, video lists),
  the 20 classes; the only module that touches VIP files.
* :mod:`.labels`: Pillow-exact NEAREST resizing, the first frame's part ids as one-hot maps at the
  input size, and propagated soft maps back to part ids.
* :mod:`.metric`: one 20 x 20 confusion matrix over every scored frame of every video; mIoU (nanmean
  over the 20 classes, background included), overall / per-class / mean accuracy and fwavacc,
  numerically equal to ``eval_vip.py`` (arrays in, numbers out).
* :mod:`.evaluate`: which videos (validated up front), part propagation (frames squashed to
  ``vip.image_size`` squared, every frame predicted, the first included), scoring a predictions
  folder with the official file semantics, and this project's results folder.

Where the official code crashes or silently miscounts (out-of-range predictions, stray files in the
predictions folder, colour PNGs) this package raises errors naming the file; where its loader has a
bug (bilinear resizing of the label image) this package does what was meant (nearest). Both are
described in the module docstrings.
"""
