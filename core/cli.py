"""The ``tether`` command line (click). Plugins add commands with ``tether_add_commands``.

Every deliberate error prints one line, ``tether: error: ...``, and exits 2 for bad input,
or 1 for a failed stage or a verdict that reaches ``--fail-on``; ``--debug`` prints the
traceback as well.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .commands import (
    check_verdicts,
    emit,
    engine_options,
    fail_on_option,
    host_of,
    json_option,
    open_workspace,
    parse_engine_params,
    print_table,
    workspace_option,
)
from .errors import TetherError

BUILTIN = ("init", "run", "plugins", "runs", "lineage", "show")


class TetherGroup(click.Group):
    """Creates the plugin host on first need and lets plugins add commands lazily."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._host = None
        self._commands_from = 0  # 0: none, 1: built-in plugins, 2: all plugins

    @property
    def host(self):
        if self._host is None:
            from .manager import PluginHost

            self._host = PluginHost()
        return self._host

    def _add_plugin_commands(self, everything: bool) -> None:
        if self._commands_from == 0:
            self._commands_from = 1
            self.host.pm.hook.tether_add_commands.call_historic(kwargs={"cli": self})
        if everything and self._commands_from == 1:
            self._commands_from = 2
            self.host.load_entry_points()  # historic: new plugins add their commands too

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None and name not in BUILTIN:
            self._add_plugin_commands(everything=False)
            command = super().get_command(ctx, name)
            if command is None:
                self._add_plugin_commands(everything=True)
                command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(everything=True)
        return super().list_commands(ctx)


@click.group(cls=TetherGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tether")
@click.option("--log-format", type=click.Choice(["auto", "console", "json"]), default="auto", show_default=True,
              help="Log format: human on a terminal, JSON lines otherwise.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str, debug: bool) -> None:
    """tether: reproducible, traceable, monitorable ML systems."""
    from .log import configure_logging

    configure_logging(log_format, "debug" if debug else log_level)
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Create a starter project in DIRECTORY that runs as it is: a chain, a small data set
    and a training step to replace with your own."""
    from .names import check_name
    from .starter import write_starter

    root = Path(directory)
    name = check_name(root.resolve().name.lower().replace(" ", "-"), "DIRECTORY", what="project name")
    written = write_starter(root, name)
    click.echo(f"created {', '.join(str(p) for p in written)} and {root / '.tether'}/")
    click.echo(f"run it: cd {root} && tether run chain.yaml")


@cli.command()
@click.argument("chain_file", type=click.Path(dir_okay=False))
@click.option("--from", "from_stage", metavar="STAGE",
              help="Rerun this stage and every later one even if unchanged.")
@click.option("--force", is_flag=True, help="Rerun every stage even if unchanged.")
@engine_options
@fail_on_option
@json_option
@click.pass_context
def run(ctx: click.Context, chain_file: str, from_stage: str | None, force: bool, engine: str | None,
        engine_params: tuple[str, ...], fail_on: str, json_output: bool) -> None:
    """Run the chain in CHAIN_FILE and print a summary.

    A stage whose params, inputs and code are unchanged since an earlier run of the chain
    reuses that run's output (snapshots always read their source; deploy and monitor
    stages always run). The exit code is 1 when a monitor stage's verdict reaches
    --fail-on (after the summary is printed). --engine overrides the chain's engine
    (keeping its params when it names the same one); --engine-param sets one of its params.
    """
    from .config import load_chain
    from .runner import run_chain
    from .summary import summarize_run

    host = host_of(ctx)
    chain = load_chain(chain_file, host)
    if engine is not None or engine_params:
        from .config import with_engine

        chain = with_engine(chain, engine or chain.engine.plugin, host, parse_engine_params(engine_params))
    progress = _progress(len(chain.stages), quiet=json_output)
    try:
        run_record, outputs = run_chain(chain, host, from_stage=from_stage, force=force, on_stage=progress)
    finally:
        progress.close()
    emit(ctx, {"run": run_record, "outputs": outputs},
         lambda: click.echo(summarize_run(run_record, outputs)))
    check_verdicts(((r.verdict, f"stage {stage_id} (monitor {r.id})") for stage_id, r in outputs.items()
                    if getattr(r, "kind", None) == "monitor_report"), fail_on)


class _progress:
    """A rich status line per stage on a terminal; silent otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.status = total, 0, None
        from .log import live_output

        if not quiet and live_output():
            from rich.console import Console

            self.status = Console(stderr=True).status("starting")
            self.status.start()

    def __call__(self, stage, event: str) -> None:
        if event != "start":
            self.done += 1
        if self.status is not None:
            label = stage.stage if stage.stage != "step" else stage.step
            self.status.update(f"[{self.done}/{self.total}] {stage.id}: {label} ({event})")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


@cli.command()
@json_option
@click.pass_context
def plugins(ctx: click.Context, json_output: bool) -> None:
    """List plugins: hooks, backends, and the extras unavailable ones need."""
    rows = host_of(ctx).describe()

    def human() -> None:
        for row in rows:
            state = "" if row["available"] else f"  [unavailable: {row['install']}]"
            click.echo(f"{row['name']} ({row['origin']}, {row['version']}){state}")
            if row["backends"]:
                click.echo(f"    backends: {', '.join(row['backends'])}")
            hooks = [h for h in row["hooks"] if h != "tether_add_backends"]
            if hooks:
                click.echo(f"    hooks: {', '.join(hooks)}")

    emit(ctx, rows, human)


class PluginSubgroup(click.Group):
    """A built-in group that plugins add subcommands to (``tether runs diff``): a name it
    does not know loads the plugins' commands first."""

    def _root(self, ctx: click.Context) -> TetherGroup | None:
        root = ctx.find_root().command
        return root if isinstance(root, TetherGroup) else None

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        root = self._root(ctx)
        if command is None and root is not None:
            root._add_plugin_commands(everything=True)
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        root = self._root(ctx)
        if root is not None:
            root._add_plugin_commands(everything=True)
        return super().list_commands(ctx)


@cli.group(cls=PluginSubgroup)
def runs() -> None:
    """Inspect recorded runs."""


@runs.command("ls")
@workspace_option
@click.option("--chain", help="Only runs of this chain (or run name).")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "crashed"]),
              help="Only runs with this status.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag (repeatable).")
@click.option("--snapshot", metavar="ID", help="Only runs that used this snapshot.")
@click.option("--where", "wheres", multiple=True, metavar="EXPR",
              help="Only runs whose latest metric value satisfies EXPR, e.g. 'roc_auc>0.8' (operators > >= < <= "
                   "== !=; repeat to AND; runs without the metric are left out).")
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def runs_ls(ctx: click.Context, workspace: str, chain: str | None, status: str | None, tags: tuple[str, ...],
            snapshot: str | None, wheres: tuple[str, ...], limit: int, json_output: bool) -> None:
    """List runs, newest first, optionally filtered."""
    from .liveness import mark_crashed
    from .run_query import parse_tag, parse_where, select_runs

    conditions = [parse_where(text) for text in wheres]
    wanted_tags = [parse_tag(text) for text in tags]
    filtered = bool(status or wanted_tags or snapshot or conditions)
    ws = open_workspace(ctx, workspace)
    found = mark_crashed(ws.store, ws.store.find("run", name=chain, limit=None if filtered else limit))
    found, metrics = select_runs(ws.store, found, status=status, tags=wanted_tags, snapshot=snapshot,
                                 conditions=conditions)
    found = found[:limit]

    def human() -> None:
        if not found:
            click.echo(f"no runs in {ws.root}" + (" match" if filtered else ""))
            return
        keys = [c.key for c in conditions]
        print_table(["run", "status", "chain", "started (UTC)", "stages", *keys, "error"],
                    [[r.id, r.status, r.chain, f"{r.started_at:%Y-%m-%d %H:%M:%S}", _stage_counts(r),
                      *(f"{metrics.get(r.id, {}).get(k):.6g}" for k in keys), r.error] for r in found])

    emit(ctx, found, human)


def _stage_counts(run) -> str:
    ran = sum(s.status == "succeeded" for s in run.stages)
    reused = sum(s.status == "reused" for s in run.stages)
    failed = sum(s.status == "failed" for s in run.stages)
    return ", ".join(f"{n} {word}" for n, word in ((ran, "ran"), (reused, "reused"), (failed, "failed")) if n)


@runs.command("show")
@click.argument("run_id")
@workspace_option
@json_option
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, workspace: str, json_output: bool) -> None:
    """Show one run (an id, id prefix, or a chain name for its latest run): code, data,
    environment, params, seeds, notes, tags, artifacts, metrics (with a summary of each
    series), stages with why each ran or was reused, outputs, error. ``--json`` prints
    ``{"run": record, "series": {metric: summary}}``."""
    from .liveness import mark_crashed
    from .run_query import series_summaries

    ws = open_workspace(ctx, workspace)
    record = mark_crashed(ws.store, [ws.resolve(run_id, kind="run")])[0]
    series = series_summaries(ws.store, record)

    def human() -> None:
        ended = f"{record.ended_at:%Y-%m-%d %H:%M:%S}" if record.ended_at else "(still running)"
        click.echo(f"run {record.id}  chain {record.chain}  {record.status}  "
                   f"started {record.started_at:%Y-%m-%d %H:%M:%S}  ended {ended} (UTC)")
        click.echo("code: " + ", ".join(f"{k}={v}" for k, v in sorted(record.code.items())))
        _show_details(record)
        if series:
            print_table(["metric", "values", "steps", "min", "max", "last"],
                        [[key, s["count"], s["steps"], f"{s['min']:.6g}", f"{s['max']:.6g}", f"{s['last']:.6g}"]
                         for key, s in series.items()], title="metrics")
        if record.stages:
            print_table(["stage", "kind", "plugin", "status", "why", "output", "error"],
                        [[s.id, s.stage, s.plugin, s.status, s.reason, s.output_id, s.error] for s in record.stages])
        if record.error:
            click.echo(f"error: {record.error}")

    emit(ctx, {"run": record, "series": series}, human)


def _show_details(record) -> None:
    """The tracked fields of a run, one aligned table of ``section  key  value``."""
    packages = record.environment.get("packages", {})
    env = {k: v for k, v in record.environment.items() if k != "packages"}
    sections = [("data", {f"{k}.{f}": v for k, e in record.data.items() for f, v in e.items() if f != "kind"}),
                ("environment", {**env, **{f"packages.{k}": v for k, v in packages.items()}}),
                ("params", record.params), ("seeds", record.seeds), ("notes", record.notes), ("tags", record.tags),
                ("artifacts", {k: f"{r.digest} ({r.size} bytes)" for k, r in record.artifacts.items()}),
                ("tracker errors", dict(enumerate(record.tracker_errors, 1)))]
    rows = [[section, key, value] for section, values in sections for key, value in sorted(values.items())]
    if record.chain_path:
        rows.insert(0, ["chain", "file", record.chain_path])
    if rows:
        print_table(["section", "key", "value"], rows)


@cli.command()
@click.argument("record_id")
@workspace_option
@json_option
@click.pass_context
def show(ctx: click.Context, record_id: str, workspace: str, json_output: bool) -> None:
    """Show any record (an id or a unique id prefix): its fields, or JSON with --json."""
    from . import serde

    ws = open_workspace(ctx, workspace)
    record = ws.resolve(record_id)

    def human() -> None:
        fields = serde.converter.unstructure(record)
        print_table(["field", "value"], [[key, value if isinstance(value, (str, int, float)) or value is None
                                          else json.dumps(value, sort_keys=True, default=str)]
                                         for key, value in fields.items()], title=f"{record.kind} {record.id}")

    emit(ctx, record, human)


@cli.command()
@click.argument("ref")
@click.option("--upstream", is_flag=True, help="Only what REF was made from.")
@click.option("--downstream", is_flag=True, help="Only what was made from REF (every model version and "
              "deployment that used a snapshot).")
@workspace_option
@json_option
@click.pass_context
def lineage(ctx: click.Context, ref: str, upstream: bool, downstream: bool, workspace: str,
            json_output: bool) -> None:
    """Show what REF was made from (upstream) and what was made from it (downstream), with
    the runs that made each record; records reached twice are printed once.

    REF is a record id, a unique id prefix or a model version (churn@3, churn@champion).
    """
    from .lineage import build, render

    ws = open_workspace(ctx, workspace)
    record = ws.resolve(ref)
    both = upstream == downstream
    graph = build(ws.store, record, upstream=upstream or both, downstream=downstream or both)
    emit(ctx, graph, lambda: click.echo("\n".join(render(graph, upstream=upstream or both,
                                                         downstream=downstream or both))))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning tether's errors into one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="tether", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tether: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"tether: error: {exc.format_message()}", err=True)
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except TetherError as exc:
        from .secrets import redact

        if debug:
            import traceback

            click.echo(redact(traceback.format_exc()), err=True, nl=False)

        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        click.echo(f"tether: error: {redact(message)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        from .secrets import redact

        if debug:
            import traceback

            click.echo(redact(traceback.format_exc()), err=True, nl=False)
            sys.exit(1)
        click.echo(f"tether: error: internal error: {type(exc).__name__}: {redact(str(exc))} (rerun with "
                   "--debug for the traceback and report it)", err=True)
        sys.exit(1)
    sys.exit(0)
