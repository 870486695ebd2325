"""Serving (``pip install 'tether[serve]'``): ``tether serve`` answers predictions of an
environment's active deployment over HTTP, routes them by its rollout strategy (shadow,
canary, blue-green, fallback), logs every prediction as Parquet and analyses canary steps
with pluggable analysis signals (backend kind ``analysis_signal``).

Modules, by concern:

* :mod:`.plan` - what serving reads of a deployment (the rollout plugin's records) and
  the decisions it records through it;
* :mod:`.routing` - the router: arms, sticky canary hashing, fallback, shadow mirror;
* :mod:`.stats` - each arm's window since the plan took effect;
* :mod:`.predlog` - the Parquet prediction log (background writer);
* :mod:`.analysis` - the canary analysis; :mod:`.signals` - the built-in signals;
* :mod:`.control` - the control loop (polls deployments, loads bundles, decides);
* :mod:`.app` - the Starlette app; :mod:`.server` - uvicorn; :mod:`.commands` - the CLI.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .signals import SIGNALS

    for cls in SIGNALS:
        backends.add(cls)


@hookimpl
def tether_add_commands(cli):
    from .commands import serve

    cli.add_command(serve)
