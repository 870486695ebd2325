"""Rollout strategies: how a model version is put to work (the ``deploy`` stage's backends).

* :mod:`.batch` - ``batch``: stream a snapshot or a Parquet/CSV file through the model
  version's bundle into a Parquet prediction file, in bounded memory;
* :mod:`.strategies` - ``shadow``, ``canary``, ``blue_green``: serving rollouts a router
  carries out; :mod:`.params` - their fallback and canary analysis parameters;
* :mod:`.state` - deployment state, ``active_deployment``, ``advance``, ``roll_back``,
  ``abort`` (append-only ``deployment_event`` records of :mod:`.records`, audited);
* :mod:`.rollback` - the ``previous`` rollback backend monitors call;
* :mod:`.stage` - the deploy stage; :mod:`.commands` - ``tether deploy``.

See ``docs/deploy.md``.
"""

from tether import hookimpl


@hookimpl(trylast=True)
def tether_deploy(model_version, snapshot, stage, context):
    from .stage import deploy

    return deploy(context.backend(stage), model_version, snapshot, context=context)


@hookimpl
def tether_add_backends(backends):
    from . import records  # noqa: F401 - defines the record kind "deployment_event"
    from .batch import BatchRollout
    from .rollback import PreviousVersionRollback
    from .strategies import BlueGreenRollout, CanaryRollout, ShadowRollout

    for cls in (BatchRollout, ShadowRollout, CanaryRollout, BlueGreenRollout, PreviousVersionRollback):
        backends.add(cls)


@hookimpl
def tether_add_commands(cli):
    from .commands import deploy

    cli.add_command(deploy)
