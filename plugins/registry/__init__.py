"""The model registry: versions with model cards, statuses, aliases, approvals and history.

Modules, by concern:

* :mod:`.records` - the append-only record kinds ``model_transition``, ``model_alias``
  and ``model_approval``;
* :mod:`.registry` - ``WorkspaceRegistry`` (backend kind ``registry``, name ``default``)
  and ``register_version``, the one writer of ``ModelVersion`` records;
* :mod:`.policy` - the transition policy (``<workspace>/policy.yaml``, ``registry:``);
* :mod:`.state` - status, aliases and approvals replayed from the records, the checked
  changes, and model-version references (``churn@champion``);
* :mod:`.history` - who held which status, alias or environment, from when to when;
* :mod:`.api` - registering and promoting from Python; :mod:`.commands` - ``tether models``
  and ``tether audit``.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl(trylast=True)
def tether_register(model, evaluation, stage, context):
    return context.backend(stage).register(model, evaluation, context=context)


@hookimpl
def tether_add_backends(backends):
    from . import records  # noqa: F401 - defines the record kinds of status, alias and approval changes
    from .registry import WorkspaceRegistry
    from .state import KIND, resolve_reference

    backends.add(WorkspaceRegistry)
    backends.add_reference(KIND, resolve_reference)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)
