"""Kedro project settings (https://docs.kedro.org/en/stable/kedro_project_setup/settings.html)."""

from kedro.config import OmegaConfigLoader  # noqa: F401  (the default loader, named for readers)

from sfc.hooks import ProjectHooks, TrackingHooks

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An env (conf/demo, conf/local) overrides single keys (e.g. only fc_pretrain.steps) instead of
    # replacing whole top-level blocks.
    "merge_strategy": {"parameters": "soft"},
}
# Strict parameters and missing-input checks before any node runs; run names, provenance tags and
# KILLED status for interrupted runs (TrackingHooks); kedro-mlflow registers its own
# hook through the `kedro.hooks` entry point.
HOOKS = (ProjectHooks(), TrackingHooks())
