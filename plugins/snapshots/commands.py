"""The ``tether snapshots`` group (create, ls, show, get, diff) and ``tether verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tether.commands import emit, json_option, open_workspace, workspace_option
from tether.errors import ConfigError, DataError, NotFoundError

DATABASE_PREFIXES = ("sqlite:///", "postgresql://", "postgres://")


@click.group()
def snapshots() -> None:
    """Create, list, show, materialise and compare dataset snapshots."""


@snapshots.command("create")
@click.argument("source")
@click.option("--name", required=True, help="Dataset name; each distinct content becomes its next version.")
@click.option("--time-column", help="Date/time column: the card's time range is computed from it.")
@click.option("--key", "keys", multiple=True, metavar="COLUMN", help="Key column(s), for row-level diffs.")
@click.option("--query", help="SQL query when SOURCE is a database (sqlite:///file.db or a postgresql:// DSN).")
@click.option("--card", "card_file", type=click.Path(dir_okay=False),
              help="YAML/JSON file with declared card fields (owner, description, ...).")
@workspace_option
@json_option
@click.pass_context
def create(ctx, source, name, time_column, keys, query, card_file, workspace, json_output):
    """Snapshot SOURCE (a CSV/Parquet file, a Parquet folder, or a database with --query); print its id."""
    from .create import take_snapshot

    card = _read_card_file(card_file) if card_file else None
    ws = open_workspace(ctx, workspace)
    data, described = _open_source(source, query)
    record = take_snapshot(data, name=name, source=described, workspace=ws, time_column=time_column,
                           key=keys, card=card)
    emit(ctx, record, lambda: click.echo(record.id))


def _open_source(source: str, query: str | None) -> tuple[Any, str]:
    """The data to snapshot for ``create``'s SOURCE and how the card describes it."""
    from tether.plugins.tables import CSV_SUFFIXES, PARQUET_SUFFIXES

    from .conform import describe_input
    from .sources import SqlSource

    if query is not None and (source.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES) or Path(source).is_dir()):
        raise ConfigError(f"--query applies to database sources (sqlite:///file.db or a postgresql:// DSN), "
                          f"not to the file '{source}'; drop --query")
    if query is not None or source.startswith(DATABASE_PREFIXES):
        if not query:
            raise ConfigError(f"--query: a database source needs a query (SOURCE is {source.split(':')[0]})")
        backend = SqlSource(url=source, query=query)
        backend.preflight(context=None)
        return backend.read(context=None), backend.describe()
    path = Path(source)
    if not path.exists():
        raise DataError(f"source '{source}' not found")
    return path, describe_input(path)


def _read_card_file(path: str) -> dict[str, Any]:
    import yaml
    from tether.plugins.tables import first_line

    from .card import declared_card

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--card: cannot read '{path}': {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--card: '{path}' is not valid YAML/JSON: {first_line(exc)}") from None
    return declared_card(data, where=f"--card {path}")


@snapshots.command("ls")
@click.argument("name", required=False)
@workspace_option
@json_option
@click.pass_context
def ls(ctx, name, workspace, json_output):
    """List snapshots (the versions of NAME, or every dataset's)."""
    ws = open_workspace(ctx, workspace)
    found = sorted(ws.store.find("snapshot", name=name), key=lambda r: (r.name, r.version or 0))
    if name and not found:
        raise NotFoundError(f"no snapshots of dataset '{name}' (see `tether snapshots ls`)")

    def human():
        if not found:
            click.echo("no snapshots")
        for r in found:
            click.echo(f"{r.name}@{r.version or '?':<4} {r.id}  {r.num_rows:>12,} rows x {len(r.columns):<3} cols  "
                       f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.source}")

    emit(ctx, found, human)


@snapshots.command("show")
@click.argument("ref")
@workspace_option
@json_option
@click.pass_context
def show(ctx, ref, workspace, json_output):
    """Show a snapshot's dataset card (REF: id, NAME or NAME@VERSION)."""
    from .card import format_card

    record = open_workspace(ctx, workspace).resolve(ref, kind="snapshot", hint="tether snapshots ls")
    emit(ctx, record, lambda: click.echo(format_card(record)))


@snapshots.command("get")
@click.argument("ref")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this .parquet or .csv file.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), help="Default: from --output's suffix.")
@workspace_option
@json_option
@click.pass_context
def get(ctx, ref, output, fmt, workspace, json_output):
    """Materialise the exact data of a snapshot, verified, to a file (or CSV on stdout)."""
    import sys

    from .read import write_csv_stream, write_snapshot

    ws = open_workspace(ctx, workspace)
    record = ws.resolve(ref, kind="snapshot", hint="tether snapshots ls")
    if output:
        path = write_snapshot(ws, record, output, fmt)
        emit(ctx, {"snapshot": record.id, "output": str(path), "rows": record.num_rows},
             lambda: click.echo(str(path)))
        return
    if fmt == "parquet":
        raise ConfigError("--format parquet needs --output FILE")
    write_csv_stream(ws, record, sys.stdout.buffer)


@snapshots.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--key", "keys", multiple=True, metavar="COLUMN", help="Key column(s); default: the declared key.")
@click.option("--samples", default=5, show_default=True, type=click.IntRange(min=0),
              help="Sample keys shown per kind of change (0: counts only).")
@workspace_option
@json_option
@click.pass_context
def diff(ctx, a, b, keys, samples, workspace, json_output):
    """Compare two snapshots: schema, rows by key, summary statistics."""
    from .diff import diff_snapshots, format_diff

    ws = open_workspace(ctx, workspace)
    ra, rb = (ws.resolve(r, kind="snapshot", hint="tether snapshots ls") for r in (a, b))
    report = diff_snapshots(ws, ra, rb, key=keys, samples=samples)
    emit(ctx, report, lambda: click.echo(format_diff(report)))


@click.command("verify")
@click.option("--deep", is_flag=True, help="Also re-read every snapshot and recompute its data fingerprint.")
@click.option("--gc", is_flag=True, help="Delete unreferenced objects and temp files older than --grace.")
@click.option("--grace", default=3600.0, show_default=True, help="Seconds a leftover must be old for --gc.")
@workspace_option
@json_option
@click.pass_context
def verify(ctx, deep, gc, grace, workspace, json_output):
    """Re-hash every stored object and report any that changed or are missing (exit 1 if so)."""
    from .verify import format_verify, verify_failure, verify_workspace

    ws = open_workspace(ctx, workspace)
    report = verify_workspace(ws, deep=deep, gc=gc, grace_seconds=grace)
    emit(ctx, report, lambda: click.echo(format_verify(report)))
    if not report["ok"]:
        raise verify_failure(report, ws.root)


def register(cli) -> None:
    cli.add_command(snapshots)
    cli.add_command(verify)
