"""Project hooks: refuse a run whose parameters or inputs are wrong, before any node starts.

* Every parameter group is checked against its typed config (:func:`sfc.parameters.validate_parameters`):
  an unknown key (``--params propagation.topK=5``), a missing one, a wrong type or a value out of
  range fails the run with one message listing every problem.
* Every input of the requested pipeline(s) that another pipeline produces must exist: running
  ``fc_pretrain`` before ``extract_frames`` says which pipeline to run first instead of failing
  inside a dataset's ``load``.

Both run first among the ``before_pipeline_run`` hooks (``tryfirst``), so kedro-mlflow opens no run
for a refused one.

:class:`TrackingHooks` runs last, once kedro-mlflow has opened the pipeline's MLflow run: it names the
run after what tells it apart from its neighbours (:func:`sfc.provenance.run_name`), tags it with the
git commit, the DVC or listing hash of every dataset it reads, the SHA-256 of every checkpoint, the
library versions and the machine (:mod:`sfc.provenance`), marks the experiment as model development
(MLflow 3.17's UI reads the choice of view from the browser: "Model training" once), and marks a
run stopped by Ctrl+C (or any exit before the pipeline ended) ``KILLED`` instead of the ``FINISHED`` MLflow's exit handler would record.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from sfc import provenance
from sfc.config import ConfigError
from sfc.parameters import validate_parameters

logger = logging.getLogger(__name__)


class MissingInputError(RuntimeError):
    """An input of the requested pipeline is produced by another pipeline that has not run yet."""


def dataset_path(dataset: Any) -> str | None:
    """The file or folder behind a dataset (None when it has none, e.g. a MemoryDataset)."""
    inner = getattr(dataset, "_dataset", None) or getattr(dataset, "dataset", None)
    for candidate in (dataset, inner):
        for attr in ("_filepath", "_path"):
            value = getattr(candidate, attr, None)
            if value:
                return str(value)
    return None


def _where(dataset: Any) -> str:
    """`` (path)`` of a dataset for messages (``''`` when it has none)."""
    path = dataset_path(dataset)
    return f" ({path})" if path else ""


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

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Under DVC, the data root of params.yaml must be the Kedro env's (``SFC_DATA_ROOT``, set by dvc.yaml)."""
        expected = os.environ.get("SFC_DATA_ROOT")
        if not expected:
            return
        actual = str((context.config_loader.get("globals") or {}).get("data", ""))
        if os.path.normpath(actual) != os.path.normpath(expected):
            raise ConfigError(
                f"params.yaml says data: {expected} but the Kedro env `{context.env}` keeps its data under "
                f"{actual!r} (conf/{context.env}/globals.yml, else conf/base/globals.yml): set params.yaml's "
                "kedro_env and data together (demo: demo + data/demo; real: real + data)"
            )

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


# The experiment holds model-training runs, not GenAI traces. (MLflow 3.17.2's UI ignores the tag when it
# picks a view: it takes the URL's workflowType or the browser's last choice, GenAI by default.)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Parameter group -> the key naming the dataset folder it reads.
DATA_ROOTS = {"davis": "root", "jhmdb": "root", "vip": "root", "frames": "root"}


def provenance_tags(
    project: Path, pipeline_inputs: set[str], params: dict[str, Any], catalog: Any
) -> dict[str, str]:
    """MLflow tags tracing a run to its code, data, checkpoints, libraries and machine."""
    tags: dict[str, str] = {}
    git = provenance.git_state(project)
    if git:
        tags["mlflow.source.git.commit"] = git["commit"]  # shown by the UI as the run's source version
        tags["git.commit"], tags["git.dirty"] = git["commit"], git["dirty"]
    dvc_outs = provenance.dvc_outputs(project)
    groups = {name.removeprefix("params:") for name in pipeline_inputs if name.startswith("params:")}
    for group, key in DATA_ROOTS.items():
        if group in groups and params.get(group, {}).get(key):
            tags[f"data.{group}"] = provenance.data_fingerprint(params[group][key], project, dvc_outs)
    for name in sorted(pipeline_inputs):  # file-backed inputs written by another pipeline
        path = None if name.startswith("params:") or name == "parameters" else dataset_path(catalog.get(name))
        if path:
            tags[f"input.{name}"] = provenance.data_fingerprint(path, project, dvc_outs)
    for group in ("backbone", "semantic"):
        cfg = params.get(group) or {}
        if group in groups and cfg.get("arch"):
            tags[f"checkpoint.{group}"] = (
                f"{cfg['arch']} " + provenance.checkpoint_fingerprint(cfg.get("checkpoint"), cfg.get("seed"), project)
            )
    tags.update({f"version.{k}": v for k, v in provenance.library_versions().items()})
    tags.update({f"device.{k}": v for k, v in provenance.device_description().items()})
    return tags


class TrackingHooks:
    """Run name, provenance tags and honest run status (see the module docstring)."""

    def __init__(self) -> None:
        self._open_run: str | None = None
        self._exit_handler = False

    @hook_impl(trylast=True)  # after kedro-mlflow's before_pipeline_run has started the run
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:  # tracking disabled for this pipeline
            return
        project = Path(run_params.get("project_path") or ".").resolve()
        params = catalog.load("parameters")
        client = mlflow.MlflowClient()
        experiment = client.get_experiment(run.info.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            client.set_experiment_tag(run.info.experiment_id, *EXPERIMENT_KIND)
        pipelines = list(run_params.get("pipeline_names") or ["__default__"])
        mlflow.set_tags(provenance_tags(project, set(pipeline.inputs()), params, catalog))
        mlflow.set_tag("mlflow.runName", provenance.run_name(pipelines, params, run_params.get("env")))
        self._open_run = run.info.run_id
        if not self._exit_handler:  # registered after MLflow's own handler, so it runs first
            atexit.register(self._end_interrupted_run)
            self._exit_handler = True

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._open_run = None

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._open_run = None  # kedro-mlflow ends the run as FAILED

    def _end_interrupted_run(self) -> None:
        """At exit: a run whose pipeline neither finished nor failed (Ctrl+C, SIGTERM) ends as KILLED."""
        import mlflow

        run = mlflow.active_run()
        if self._open_run and run is not None and run.info.run_id == self._open_run:
            logger.warning("The pipeline was interrupted: MLflow run %s ends as KILLED", self._open_run)
            while mlflow.active_run() is not None:  # nested node runs first, then the pipeline's
                mlflow.end_run(status="KILLED")
        self._open_run = None
