"""``tether serve``: the prediction server of an environment's active deployment."""

from __future__ import annotations

import click
from tether.commands import host_of, workspace_option


@click.command()
@workspace_option
@click.option("--environment", "-e", default="production", show_default=True,
              help="Serve this environment's active deployment (tether deploy start --environment).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", "-p", default=8000, show_default=True, type=int, help="TCP port (0: a free one).")
@click.option("--log-inputs", type=click.Choice(["full", "hash", "none"]), default="hash", show_default=True,
              help="What the prediction log keeps of each request: the inputs, their SHA-256, or nothing.")
@click.option("--log-dir", type=click.Path(file_okay=False),
              help="Prediction log folder [default: WORKSPACE/predictions/ENVIRONMENT].")
@click.option("--roll-rows", default=10_000, show_default=True, type=int, help="Rows per prediction log file.")
@click.option("--roll-seconds", default=60.0, show_default=True, type=float,
              help="Write a log file at least this often while requests arrive.")
@click.option("--reload-interval", default=1.0, show_default=True, type=float,
              help="Seconds between polls of the deployment's state (SIGHUP polls at once).")
@click.pass_context
def serve(ctx, workspace, environment, host, port, log_inputs, log_dir, roll_rows, roll_seconds, reload_interval):
    """Serve predictions of ENVIRONMENT's active deployment over HTTP (POST /predict,
    GET /health, GET /metadata), routing by its strategy and logging every prediction.

    Canary steps are analysed and promoted or rolled back automatically (docs/serving.md).
    """
    import signal
    import threading
    from pathlib import Path

    from tether.errors import ConfigError

    from .server import Server

    host_of(ctx).backends.get("analysis_signal", "error_rate")  # without the extra: the pip install to run
    settings = _settings(dict(workspace=workspace, environment=environment, host=host, port=port,
                                        log_inputs=log_inputs, log_dir=log_dir, roll_rows=roll_rows,
                                        roll_seconds=roll_seconds, reload_interval=reload_interval))
    if not Path(workspace).is_dir():
        raise ConfigError(f"--workspace: '{workspace}' is not a workspace folder; run a chain or "
                          "`tether deploy start` there first")
    server = Server(host_of(ctx), settings)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: server.controller.wake())
    click.echo(f"serving environment '{environment}' of {workspace} on http://{host}:{port} "
               f"(prediction log: {settings.log_folder}, inputs: {log_inputs})", err=True)
    server.run()


def _settings(values):
    from tether.errors import ConfigError

    from .server import ServeSettings

    try:
        return ServeSettings(**values)
    except ConfigError as exc:
        key = f"--{exc.key.replace('_', '-')}: " if exc.key else ""
        raise ConfigError(f"{key}{exc}") from None
