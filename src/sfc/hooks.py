"""Project hooks: refuse a run whose parameters or inputs are wrong, before any node starts.

* Every parameter group is checked against its typed config (:func:`sfc.parameters.validate_parameters`):
  an unknown key (``--params propagation.topK=5``), a missing one, a wrong type or a value out of
  range fails the run with one message listing every problem.
* Every input of the requested pipeline(s) that another pipeline produces must exist: running
  ``fc_pretrain`` before ``extract_frames`` says which pipeline to run first instead of failing
  inside a dataset's ``load``.

Both run first among the ``before_pipeline_run`` hooks (``tryfirst``), so kedro-mlflow opens no run
for a refused one.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from sfc.config import ConfigError
from sfc.parameters import validate_parameters

logger = logging.getLogger(__name__)


class MissingInputError(RuntimeError):
    """An input of the requested pipeline is produced by another pipeline that has not run yet."""


def _where(dataset: Any) -> str:
    """The file or folder behind a dataset, for messages (``''`` when it has none)."""
    inner = getattr(dataset, "_dataset", None) or getattr(dataset, "dataset", None)
    for candidate in (dataset, inner):
        for attr in ("_filepath", "_path"):
            value = getattr(candidate, attr, None)
            if value:
                return f" ({value})"
    return ""


def missing_inputs(pipeline: Pipeline, catalog: Any, registered: dict[str, Pipeline], requested: list[str]) -> list[str]:
    """One message per input of ``pipeline`` that another registered pipeline writes and that is absent."""
    producers: dict[str, list[str]] = {}
    for name, pipe in registered.items():
        if name == "__default__":
            continue
        for output in pipe.all_outputs():
            producers.setdefault(output, []).append(name)
    problems = []
    for dataset in sorted(pipeline.inputs()):
        if dataset.startswith("params:") or dataset == "parameters" or dataset not in producers:
            continue
        if catalog.exists(dataset):
            continue
        makers = [p for p in producers[dataset] if p not in requested] or producers[dataset]
        first = makers[0]
        problems.append(
            f"`{dataset}`{_where(catalog.get(dataset))} does not exist yet: the {first} pipeline writes it. "
            f"Run `kedro run --pipelines {first}` first, or both: `kedro run --pipelines {','.join([first, *requested])}`"
        )
    return problems


class ProjectHooks:
    """Checks run before a pipeline starts (see the module docstring)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        try:
            validate_parameters(catalog.load("parameters"))
        except ConfigError as exc:
            raise ConfigError(f"{exc}\nThe defaults and their meaning are in conf/base/parameters*.yml.") from None
        from sfc.pipeline_registry import register_pipelines  # every pipeline, not only the requested ones

        requested = list(run_params.get("pipeline_names") or ["__default__"])
        problems = missing_inputs(pipeline, catalog, register_pipelines(), requested)
        if problems:
            raise MissingInputError(
                f"cannot run {', '.join(requested)}: " + "; ".join(problems)
            )
