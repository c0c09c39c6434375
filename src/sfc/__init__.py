"""sfc: Semantic-Aware Fine-Grained Correspondence as a Kedro project.

The library (``sfc.models``, ``sfc.propagation``, ``sfc.metrics``, ``sfc.data``) is plain Python/PyTorch
and never imports Kedro or MLflow; ``sfc.pipelines`` holds the thin Kedro wiring.
"""

__version__ = "0.1.0"
