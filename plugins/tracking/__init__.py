"""Tracking: the always-on ``store`` tracker, ``tether runs diff`` and ``tether reproduce``.

Modules:

- ``store``: ``StoreTracker`` (tracker ``store``), which writes a run's record and its
  metric values (buffered, one transaction per flush) to the workspace's metadata store.
- ``diff``: what differs between two runs (data, code, config, environment, metrics).
- ``reproduce``: re-runs a recorded chain run and compares its model artifacts and metrics.
- ``commands``: ``tether runs diff`` and ``tether reproduce``.

The Python API and the fan-out to trackers live in :mod:`tether.tracking`.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .store import StoreTracker

    backends.add(StoreTracker)


@hookimpl
def tether_add_commands(cli):
    from .commands import add_commands

    add_commands(cli)
