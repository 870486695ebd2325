"""The helper API for plugin commands: what a ``commands`` module may import.

A plugin adds subcommands through the ``tether_add_commands`` hook and builds them with
click plus these helpers, never by importing :mod:`tether.cli`::

    import click
    from tether.commands import emit, json_option, open_workspace, workspace_option

    @click.command()
    @workspace_option
    @json_option
    @click.pass_context
    def hello(ctx, workspace, json_output):
        ws = open_workspace(ctx, workspace)
        runs = ws.store.find("run", limit=5)
        emit(ctx, runs, lambda: click.echo(f"{len(runs)} recent runs"))

    @hookimpl
    def tether_add_commands(cli):
        cli.add_command(hello)

Keep a commands module light at import time (click only): import pandas, pyarrow and
the plugin's own machinery inside the command function, so ``tether --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

from .errors import CheckFailed

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PluginHost
    from .workspace import Workspace

#: ``--workspace/-w PATH``: the workspace folder a command reads and writes.
workspace_option = click.option("--workspace", "-w", default=".tether", show_default=True,
                                 help="Workspace folder (storage + metadata store).")

def _quiet_for_json(ctx, param, value: bool) -> bool:
    """``--json`` given: no live display on stderr while the command runs."""
    if value:
        from .log import suppress_live_output

        suppress_live_output()
        ctx.call_on_close(lambda: suppress_live_output(False))
    return value


#: ``--json``: machine-readable output on stdout (the command receives ``json_output``), and
#: no live display (progress bar) on stderr
json_option = click.option("--json", "json_output", is_flag=True, callback=_quiet_for_json,
                           help="Print machine-readable JSON.")


#: ``--fail-on critical|warning|never``: the one exit-code rule of every command that
#: checks something; exit 1 when a verdict is at least this severe (default: critical).
fail_on_option = click.option(
    "--fail-on", type=click.Choice(["critical", "warning", "never"]), default="critical", show_default=True,
    help="Exit 1 when a verdict is at least this severe (after printing the report).")

SEVERITY = {"ok": 0, "warning": 1, "critical": 2}


def engine_options(command: Callable) -> Callable:
    """``--engine NAME`` and ``--engine-param KEY=VALUE`` (repeatable): the execution engine
    a command runs its partitioned work on; the command receives ``engine`` and
    ``engine_params`` (parse the latter with :func:`parse_engine_params`)."""
    command = click.option(
        "--engine-param", "engine_params", multiple=True, metavar="KEY=VALUE",
        help="An engine parameter (repeatable), its value read as YAML: workers=4, memory_limit=2GiB.")(command)
    return click.option("--engine", metavar="NAME", help="Run partitioned work on this engine (local, dask).")(command)


def parse_engine_params(values: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings of ``--engine-param`` as a mapping, each value read as a YAML
    scalar (``4`` an int, ``true`` a bool, ``2GiB`` a string); a malformed one is a
    :class:`~tether.errors.ConfigError` naming it."""
    import yaml

    from .errors import ConfigError

    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--engine-param: expected KEY=VALUE, got {item!r}")
        if key in params:
            raise ConfigError(f"--engine-param: '{key}' is given twice")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--engine-param: the value of '{key}' is not valid YAML: {raw!r}") from None
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--engine-param: the value of '{key}' must be a single value, got {raw!r}")
        params[key] = value
    return params


def create_engine(ctx: click.Context, name: str, params: dict[str, Any]) -> Any:
    """The engine ``name`` with ``params`` (checked by the engine, errors naming
    ``engine.params.KEY``); it is closed when the command ends."""
    host = host_of(ctx)
    host.backends.get("engine", name, where="--engine")
    engine = host.backends.create("engine", name, params, where="engine")
    ctx.call_on_close(engine.close)
    return engine


def check_verdicts(verdicts: Iterable[tuple[str, str]], fail_on: str) -> None:
    """Raise :class:`~tether.errors.CheckFailed` (exit 1) if one of ``(verdict, what)``
    reaches ``fail_on``; ``what`` names the report (``monitor mon-…``)."""
    if fail_on == "never":
        return
    worst = [(v, what) for v, what in verdicts if SEVERITY.get(v, 0) >= SEVERITY[fail_on]]
    if worst:
        verdict, what = max(worst, key=lambda item: SEVERITY.get(item[0], 0))
        raise CheckFailed(f"{what}: verdict {verdict.upper()} (--fail-on {fail_on}; "
                          "pass --fail-on never to exit 0)")


def host_of(ctx: click.Context) -> PluginHost:
    """The plugin host of this invocation (created on first use, shared by all commands)."""
    return ctx.find_root().command.host


def open_workspace(ctx: click.Context, workspace: str | None) -> Workspace:
    """Open the workspace at ``workspace`` with the backends a chain last ran it with;
    it is closed when the command ends."""
    from .workspace import Workspace

    ws = Workspace.open(host_of(ctx), workspace or ".tether")
    ctx.call_on_close(ws.close)
    return ws


def wants_json(ctx: click.Context) -> bool:
    """Whether ``--json`` was given to this command."""
    return bool(ctx.params.get("json_output") or ctx.find_root().params.get("json_output"))


def to_json(data: Any) -> str:
    """``data`` as indented JSON; records are serialized through tether's converter."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "kind") and hasattr(obj, "schema_version"):
            from . import serde

            return serde.to_dict(obj)
        return str(obj)

    return json.dumps(data, indent=2, sort_keys=True, default=default)


def emit(ctx: click.Context, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON with ``--json``, else call ``human()`` to print text."""
    if wants_json(ctx):
        click.echo(to_json(data))
    else:
        human()


def print_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """Print ``rows`` as an aligned table (rich) under ``columns``; cells are shown as text."""
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, no_wrap=i < len(columns) - 1, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    terminal = sys.stdout.isatty()
    console = Console(highlight=False, width=None if terminal else 200, color_system="auto" if terminal else None)
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().rstrip().splitlines()))
