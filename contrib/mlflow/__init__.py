"""MLflow bridge (extra ``mlflow``): mirror tether runs and the model registry into MLflow.

For teams whose dashboards already read MLflow: tether stays the system of record
(content-addressed artifacts, lineage, the audit log) and MLflow gets a copy.

Modules, by concern:

* :mod:`.names` - the MLflow client for a tracking URI, and tether names made valid
  MLflow keys (``roc_auc[region=north]`` becomes ``roc_auc_region_north``);
* :mod:`.tracker` - ``MlflowTracker`` (backend kind ``tracker``, name ``mlflow``): runs,
  params, metrics with steps, artifacts and tags, mirrored as a chain or a
  ``tether.start_run`` block runs (``trackers: [{plugin: mlflow, params: {...}}]``);
* :mod:`.sync` - registry sync: model versions, their statuses (as tags) and aliases;
* :mod:`.commands` - ``tether mlflow sync``.

This module holds only hooks, so loading the plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .tracker import MlflowTracker

    backends.add(MlflowTracker)


@hookimpl
def tether_add_commands(cli):
    from .commands import mlflow

    cli.add_command(mlflow)
