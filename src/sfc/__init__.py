"""sfc: Semantic-Aware Fine-Grained Correspondence as a Kedro project.

The library (``sfc.models``, ``sfc.propagation``, ``sfc.evaluation``, ``sfc.training``, ``sfc.data`` ...)
is plain Python/PyTorch and never imports Kedro or MLflow; ``sfc.pipelines`` holds the thin Kedro
wiring, ``sfc.datasets`` the custom Kedro datasets and ``sfc.hooks`` the checks run before a pipeline.
"""

import os

# Let idle OpenMP threads sleep instead of spinning: the propagation engine alternates torch ops with
# NumPy/OpenBLAS products, and spinning torch threads would steal the cores those products run on.
# Only effective when sfc is imported before torch; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Offline by design: no usage telemetry from MLflow or DVC, even when `kedro` is run directly
# (Kedro's own telemetry is off through the committed `.telemetry` file).
for _var, _value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1")):
    os.environ.setdefault(_var, _value)

__version__ = "0.1.0"
