"""Benchmarks: one package per benchmark, each whole, plus what they share.

* :mod:`sfc.evaluation.common`: the shared front door: the networks (one, or two late-fused), their
  per-frame features, and the label propagation every benchmark runs.
* :mod:`sfc.evaluation.davis`: DAVIS-2017 semi-supervised video object segmentation (J&F):
  ``reader`` (the on-disk layout), ``metric`` (J and F exactly as davis2017-evaluation),
  ``evaluate`` (sequence selection, mask propagation, scoring a results folder) and ``search``
  (the late-fusion grid search scored on DAVIS).

Adding a benchmark is adding a package with a reader, a label encoding/decoding, a metric and a
loop over its videos built on :mod:`sfc.evaluation.common`, plus a thin Kedro pipeline.
No Kedro or MLflow anywhere in this package.
"""
