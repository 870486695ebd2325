"""``tether drift``, ``tether monitor`` and ``tether profile``.

Exit codes: 0 success (``tether drift`` also when columns drifted), 1 ``tether monitor``
raised a critical alert, 2 bad input (unreadable file, unknown id, invalid config).
"""

from __future__ import annotations

from pathlib import Path

import click


def _resolve(ctx, arg: str, *, workspace: str, time_column: str | None, allow_profile: bool, state: dict):
    """(description, batches or None, stored profile record or None, time column, key columns)."""
    from tether.cli import open_workspace
    from tether.errors import DataError

    from .monitor_windows import file_batches, find_profile

    path = Path(arg)
    if path.exists():
        return f"file:{arg}", file_batches(path), None, time_column, ()
    if "ws" not in state:
        state["ws"] = open_workspace(ctx, workspace)
    ws = state["ws"]
    snap = ws.store.get(arg, kind="snapshot")
    if snap is not None:
        from .monitor_windows import stored_batches

        batches = (b for ref in snap.objects for b in stored_batches(ws, ref))
        return f"snapshot:{snap.id}", batches, None, time_column or snap.time_column, tuple(snap.key_columns)
    if allow_profile:
        from tether.errors import NotFoundError

        try:
            return f"profile:{arg}", None, find_profile(ws, arg), time_column, ()
        except NotFoundError:
            pass  # the one-line error below names every kind of input
    what = "a file, a snapshot id or a profile" if allow_profile else "a file or a snapshot id"
    raise DataError(f"'{arg}' is neither {what} (looked in {ws.root})")


def _run(ctx, reference: str, current: str, monitor, *, workspace: str, time_column: str | None,
         send: bool, stateful: bool):
    from tether.cli import host_of, open_workspace
    from tether.context import RunContext

    from .monitor_windows import ProfileBuilder, load_profile
    from .monitoring import run_monitor

    state: dict = {}
    host = host_of(ctx)
    ref_desc, ref_batches, ref_record, ref_time, ref_keys = _resolve(
        ctx, reference, workspace=workspace, time_column=time_column, allow_profile=True, state=state)
    cur_desc, cur_batches, _, cur_time, cur_keys = _resolve(
        ctx, current, workspace=workspace, time_column=time_column, allow_profile=False, state=state)
    if stateful and "ws" not in state:
        state["ws"] = open_workspace(ctx, workspace)
    ws = state.get("ws")
    context = RunContext(host=host, workspace=ws)
    keys = tuple(ref_keys) + tuple(cur_keys)
    if ref_record is not None:
        ref_profile = load_profile(ws, ref_record)
    else:
        builder = ProfileBuilder(time_column=monitor.time_column or ref_time, **monitor.builder_args(exclude=keys))
        for batch in ref_batches:
            builder.add(batch)
        ref_profile = builder.finish(label=ref_desc)

    def frame_loader():
        import pyarrow as pa

        _, batches, _, _, _ = _resolve(ctx, current, workspace=workspace, time_column=time_column,
                                       allow_profile=False, state=state)
        return pa.Table.from_batches(list(batches)).to_pandas()

    state_path = ws.root / "monitor" / "alerts-cli.json" if (stateful and ws is not None) else None
    return run_monitor(monitor, reference=ref_profile, current_batches=cur_batches, context=context,
                       reference_id=getattr(ref_record, "id", None) or ref_desc, current_id=cur_desc,
                       profile_id=getattr(ref_record, "id", None), time_column=cur_time or ref_time,
                       key_columns=keys, current_frame_loader=frame_loader, state_path=state_path,
                       send=send, launch=send)


def _parse_tests(pairs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in pairs:
        column, sep, test = pair.partition("=")
        if not sep or not column or not test:
            raise click.UsageError(f"--test expects COLUMN=TEST (or '*=TEST'), got '{pair}'")
        out.setdefault(column, []).append(test)
    return out


def add_commands(cli) -> None:
    from tether.cli import emit, host_of, json_option, workspace_option

    from .monitor_report import text_table, write_html

    @cli.command()
    @click.argument("reference")
    @click.argument("current")
    @click.option("--test", "tests", multiple=True, metavar="COLUMN=TEST",
                  help="Use TEST for COLUMN ('*' for every column); repeatable.")
    @click.option("--time-column", help="Time column (freshness, windows); skipped by the drift tests.")
    @click.option("--html", "html", type=click.Path(dir_okay=False), help="Also write the HTML report here.")
    @workspace_option
    @json_option
    @click.pass_context
    def drift(ctx, reference, current, tests, time_column, html, workspace, json_output):
        """Compare CURRENT with REFERENCE (CSV/Parquet files, snapshot ids, or a stored
        profile as REFERENCE) with the default drift tests and health checks."""
        from .monitoring import DriftMonitor

        params = {"tests": _parse_tests(tests)}
        monitor = host_of(ctx).backends.create("monitor", "drift", params, where="--test")
        monitor = DriftMonitor(**{**_fields(monitor), "time_column": time_column, "html": None})
        report = _run(ctx, reference, current, monitor, workspace=workspace, time_column=time_column,
                      send=False, stateful=False)
        if html:
            write_html(report, Path(html))
        emit(ctx, report, lambda: click.echo(text_table(report)))

    @cli.command()
    @click.argument("current")
    @click.option("--reference", "-r", required=True,
                  help="Reference: a stored profile (id or name), a snapshot id, or a CSV/Parquet file.")
    @click.option("--config", "-c", "config", type=click.Path(dir_okay=False),
                  help="YAML file with the monitor's params (tests, rules, sinks, triggers, model...).")
    @click.option("--time-column", help="Time column of the current window.")
    @click.option("--window", type=click.Choice(["none", "daily", "weekly"]), help="Split the current window.")
    @click.option("--html", "html", type=click.Path(dir_okay=False), help="Write the HTML report here.")
    @workspace_option
    @json_option
    @click.pass_context
    def monitor(ctx, current, reference, config, time_column, window, html, workspace, json_output):
        """Monitor CURRENT (a file or snapshot id) against a reference; send alerts.

        Exit status: 0 no critical alert, 1 a critical alert fired, 2 bad input.
        """
        params = _load_config(config)
        if window:
            params["window"] = window
        if time_column:
            params["time_column"] = time_column
        params.pop("html", None)
        mon = host_of(ctx).backends.create("monitor", "drift", params, where=config or "monitor")
        report = _run(ctx, reference, current, mon, workspace=workspace, time_column=time_column,
                      send=True, stateful=True)
        if html:
            write_html(report, Path(html))
        emit(ctx, report, lambda: click.echo(text_table(report)))
        if report.verdict == "critical":
            import sys

            sys.exit(1)  # click's Exit is turned into a return value outside standalone mode

    @cli.command()
    @click.argument("source")
    @click.option("--name", "-n", required=True, help="Profile name; each call stores the next version.")
    @click.option("--time-column", help="Time column (its range is recorded; not profiled).")
    @click.option("--exclude", multiple=True, help="Column to leave out; repeatable.")
    @workspace_option
    @json_option
    @click.pass_context
    def profile(ctx, source, name, time_column, exclude, workspace, json_output):
        """Summarise SOURCE (a CSV/Parquet file or snapshot id) into a stored reference profile."""
        from tether.cli import open_workspace

        from .monitor_windows import ProfileBuilder, save_profile

        state = {"ws": open_workspace(ctx, workspace)}
        desc, batches, _, tcol, keys = _resolve(ctx, source, workspace=workspace, time_column=time_column,
                                                allow_profile=False, state=state)
        builder = ProfileBuilder(time_column=tcol, exclude=tuple(exclude) + tuple(keys))
        for batch in batches:
            builder.add(batch)
        prof = builder.finish()
        if prof.rows == 0:
            from tether.errors import DataError

            raise DataError(f"{desc} has no rows; a reference profile needs data")
        snap_id = desc.split(":", 1)[1] if desc.startswith("snapshot:") else None
        rec = save_profile(state["ws"], prof, name=name, snapshot_id=snap_id, source=desc)
        emit(ctx, rec, lambda: click.echo(f"profile {rec.id}  {rec.name} v{rec.version}  {rec.num_rows} rows, "
                                          f"{len(rec.columns)} columns"))


def _fields(instance) -> dict:
    import attrs

    return {a.name: getattr(instance, a.name) for a in attrs.fields(type(instance)) if a.init}


def _load_config(path: str | None) -> dict:
    from tether.errors import ConfigError

    if not path:
        return {}
    from tether.config import read_yaml_file

    raw = read_yaml_file(path, "monitor config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of monitor params, got {type(raw).__name__}")
    return raw
