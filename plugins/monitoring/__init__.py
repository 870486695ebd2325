"""Monitoring: the ``drift`` monitor, its drift tests, window sources and alert sinks, the
monitor stage and the ``tether drift`` / ``tether monitor`` / ``tether profile`` commands.

Modules, by concern:

* :mod:`.sketches` - mergeable numeric and categorical column sketches;
  :mod:`.drift_tests` - drift tests (backend kind ``drift``) on two sketches;
* :mod:`.profiles` - data profiles built from Arrow record batches, daily/weekly windows;
  :mod:`.profile_store` - stored reference profiles (record kind ``profile``);
* :mod:`.windows` - window sources (backend kind ``window``): snapshot, file, deployment;
* :mod:`.compare` - drift comparison; :mod:`.health` - data health; :mod:`.model` - model
  behaviour (CBPE, delayed labels); :mod:`.signals` - results as signals;
* :mod:`.alerts` - alert rules and cooldowns; :mod:`.sinks` - alert sinks (backend kind
  ``alert_sink``); :mod:`.triggers` - retraining triggers and the rollback action;
* :mod:`.params` - the monitor's parameter groups; :mod:`.monitor` - the ``drift`` monitor
  (backend kind ``monitor``) and its run;
* :mod:`.report` - the HTML report and the terminal table; :mod:`.commands` - the CLI.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from . import profile_store  # noqa: F401 - defines the record kind "profile"
    from .drift_tests import TESTS
    from .monitor import DriftMonitor
    from .sinks import FileSink, LogSink, WebhookSink
    from .windows import DeploymentWindow, FileWindow, SnapshotWindow

    for cls in (DriftMonitor, *TESTS, SnapshotWindow, FileWindow, DeploymentWindow, LogSink, FileSink, WebhookSink):
        backends.add(cls)


@hookimpl(trylast=True)
def tether_monitor(reference, current, deployment, stage, context):
    return context.backend(stage).run(reference=reference, current=current, deployment=deployment, context=context)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)
