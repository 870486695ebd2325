"""``tether drift``, ``tether monitor`` and ``tether profile``.

Exit codes (every command): 0 success, 1 the verdict reached ``--fail-on`` (default
``critical``; the report is printed first), 2 bad input (unreadable file, unknown
reference, invalid config). References are resolved by ``Workspace.resolve``: an id, a
unique id prefix, ``NAME`` or ``NAME@VERSION``; a file path is read as a file.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import click
from tether.commands import (
    check_verdicts,
    emit,
    fail_on_option,
    host_of,
    json_option,
    open_workspace,
    workspace_option,
)


@attrs.define
class _Input:
    """A command argument resolved: a file, a snapshot or (as a reference) a stored profile."""

    description: str
    batches: object = None  # record batches, or None for a stored profile
    profile: object = None  # the stored profile record
    time_column: str | None = None
    key_columns: tuple[str, ...] = ()


class _Inputs:
    """Resolves command arguments; opens the workspace only when one is needed."""

    def __init__(self, ctx, workspace: str, time_column: str | None) -> None:
        self.ctx, self.workspace, self.time_column = ctx, workspace, time_column
        self.ws = None

    def open(self):
        if self.ws is None:
            self.ws = open_workspace(self.ctx, self.workspace)
        return self.ws

    def resolve(self, arg: str, *, allow_profile: bool) -> _Input:
        """A file path, else (REFERENCE only) a stored profile, else a snapshot."""
        from .windows import file_batches, stored_batches

        if Path(arg).exists():
            return _Input(f"file:{arg}", file_batches(Path(arg)), time_column=self.time_column)
        ws = self.open()
        kinds = ("profile", "snapshot") if allow_profile else ("snapshot",)
        rec = _resolve(ws, arg, kinds)
        if rec.kind == "profile":
            return _Input(f"profile:{arg}", profile=rec, time_column=self.time_column)
        batches = (b for ref in rec.objects for b in stored_batches(ws, ref))
        return _Input(f"snapshot:{rec.id}", batches, time_column=self.time_column or rec.time_column,
                      key_columns=tuple(rec.key_columns))


def _resolve(ws, arg: str, kinds: tuple[str, ...]):
    """The first record of ``kinds`` that ``arg`` names (id, id prefix, NAME, NAME@VERSION)."""
    from tether.errors import DataError, NotFoundError

    for kind in kinds:
        try:
            return ws.resolve(arg, kind=kind)
        except NotFoundError as exc:
            if not str(exc).startswith((f"no {kind} '", f"give a {kind}")):
                raise  # e.g. an ambiguous prefix or a missing version: say that
    what = "a file, a stored profile nor a snapshot" if "profile" in kinds else "a file nor a snapshot"
    raise DataError(f"'{arg}' is neither {what} (id, id prefix, NAME or NAME@VERSION) in {ws.root}")


def _check(ctx, reference: str, current: str, monitor, *, workspace: str, time_column: str | None,
           send: bool, stateful: bool, where: str):
    """Run ``monitor`` (a ``DriftMonitor``) on CURRENT against REFERENCE; the report."""
    from tether.context import RunContext

    from .profile_store import load_profile

    inputs = _Inputs(ctx, workspace, time_column)
    monitor.check_backends(RunContext(host=host_of(ctx), workspace=None), where)
    ref = inputs.resolve(reference, allow_profile=True)
    cur = inputs.resolve(current, allow_profile=False)
    ws = inputs.open() if stateful else inputs.ws
    keys = ref.key_columns + cur.key_columns
    if ref.profile is not None:
        ref_profile = load_profile(ws, ref.profile)
    else:
        ref_profile = monitor.profile(ref.batches, label=ref.description, time_column=ref.time_column, exclude=keys)

    def frame_loader():
        import pyarrow as pa

        return pa.Table.from_batches(list(inputs.resolve(current, allow_profile=False).batches)).to_pandas()

    profile_id = getattr(ref.profile, "id", None)
    return monitor.check(reference=ref_profile, current_batches=cur.batches, context=RunContext(host=host_of(ctx),
                         workspace=ws), reference_id=profile_id or ref.description, current_id=cur.description,
                         profile_id=profile_id, time_column=cur.time_column or ref.time_column, key_columns=keys,
                         current_frame_loader=frame_loader, send=send, launch=send,
                         state_path=ws.root / "monitor" / "alerts-cli.json" if stateful else None)


def _parse_tests(pairs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in pairs:
        column, sep, test = pair.partition("=")
        if not sep or not column or not test:
            raise click.UsageError(f"--test expects COLUMN=TEST (or '*=TEST'), got '{pair}'")
        out.setdefault(column, []).append(test)
    return out


def _show(ctx, report, html: str | None, fail_on: str) -> None:
    """Print the report (and write its HTML), then exit 1 if its verdict reaches ``fail_on``."""
    from .report import print_report, write_html

    if html:
        write_html(report, Path(html))
    emit(ctx, report, lambda: print_report(report))
    check_verdicts([(report.verdict, f"monitor {report.id}")], fail_on)


@click.command()
@click.argument("reference")
@click.argument("current")
@click.option("--test", "tests", multiple=True, metavar="COLUMN=TEST",
              help="Use TEST for COLUMN ('*' for every column); repeatable.")
@click.option("--time-column", help="Time column (freshness, windows); skipped by the drift tests.")
@click.option("--html", "html", type=click.Path(dir_okay=False), help="Also write the HTML report here.")
@fail_on_option
@workspace_option
@json_option
@click.pass_context
def drift(ctx, reference, current, tests, time_column, html, fail_on, workspace, json_output):
    """Compare CURRENT with REFERENCE (CSV/Parquet files or snapshots; a stored profile as
    REFERENCE) with the default drift tests and health checks.

    Exit status: 0 ok, 1 the verdict reached --fail-on (default critical), 2 bad input.
    """
    params = {"drift": {"tests": _parse_tests(tests)}, "time_column": time_column}
    monitor = host_of(ctx).backends.create("monitor", "drift", params, where="--test")
    report = _check(ctx, reference, current, monitor, workspace=workspace, time_column=time_column,
                    send=False, stateful=False, where="--test: ")
    _show(ctx, report, html, fail_on)


@click.command()
@click.argument("current")
@click.option("--reference", "-r", required=True,
              help="Reference: a CSV/Parquet file, a stored profile or a snapshot (id, id prefix, NAME, NAME@VERSION).")
@click.option("--config", "-c", "config", type=click.Path(dir_okay=False),
              help="YAML file with the monitor's params (drift, health, model, alerts...).")
@click.option("--time-column", help="Time column of the current window.")
@click.option("--window", type=click.Choice(["none", "daily", "weekly"]), help="Split the current window.")
@click.option("--html", "html", type=click.Path(dir_okay=False), help="Write the HTML report here.")
@fail_on_option
@workspace_option
@json_option
@click.pass_context
def monitor(ctx, current, reference, config, time_column, window, html, fail_on, workspace, json_output):
    """Monitor CURRENT (a file or snapshot) against a reference; send alerts.

    Exit status: 0 ok, 1 the verdict reached --fail-on (default critical), 2 bad input.
    """
    params = _load_config(config)
    if window:
        params["windows"] = {**(params.get("windows") or {}), "every": window}
    if time_column:
        params["time_column"] = time_column
    params.pop("html", None)  # --html says where
    where = f"{config}: monitor" if config else "monitor"
    mon = host_of(ctx).backends.create("monitor", "drift", params, where=where)
    report = _check(ctx, reference, current, mon, workspace=workspace, time_column=time_column,
                    send=True, stateful=True, where=f"{where}.params")
    _show(ctx, report, html, fail_on)


@click.command()
@click.argument("source")
@click.option("--name", "-n", required=True, help="Profile name; each call stores the next version.")
@click.option("--time-column", help="Time column (its range is recorded; not profiled).")
@click.option("--exclude", multiple=True, help="Column to leave out; repeatable.")
@workspace_option
@json_option
@click.pass_context
def profile(ctx, source, name, time_column, exclude, workspace, json_output):
    """Summarise SOURCE (a CSV/Parquet file or a snapshot) into a stored reference profile."""
    from tether.errors import DataError
    from tether.names import check_name

    from .profile_store import save_profile
    from .profiles import profile_batches

    check_name(name, "--name", what="profile name")
    inputs = _Inputs(ctx, workspace, time_column)
    ws = inputs.open()
    src = inputs.resolve(source, allow_profile=False)
    prof = profile_batches(src.batches, time_column=src.time_column, exclude=tuple(exclude) + src.key_columns)
    if prof.rows == 0:
        raise DataError(f"{src.description} has no rows; a reference profile needs data")
    snap_id = src.description.split(":", 1)[1] if src.description.startswith("snapshot:") else None
    rec = save_profile(ws, prof, name=name, snapshot_id=snap_id, source=src.description)
    emit(ctx, rec, lambda: click.echo(f"profile {rec.id}  {rec.name} v{rec.version}  {rec.num_rows} rows, "
                                      f"{len(rec.columns)} columns"))


def _load_config(path: str | None) -> dict:
    from tether.documents import read_yaml_file
    from tether.errors import ConfigError

    if not path:
        return {}
    raw = read_yaml_file(path, "monitor config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of monitor params, got {type(raw).__name__}")
    return raw


def register(cli) -> None:
    for command in (drift, monitor, profile):
        cli.add_command(command)
