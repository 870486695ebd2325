"""``tether traces ls|show|export|signals``: the traces of a workspace (or of JSONL files).

Exit codes: 0 success, 2 bad input (unknown trace, unreadable file, missing extra).
"""

from __future__ import annotations

import click
from tether.commands import emit, json_option, open_workspace, print_table, workspace_option

path_option = click.option("--path", "path", type=click.Path(),
                           help="Read JSONL trace files (a file or folder) instead of the workspace store.")


#: ``--name``: only requests whose root span has this name (the command receives ``request``)
request_option = click.option("--name", "request", help="Only requests whose root span has this name.")
#: ``--limit``: at most this many traces, the newest (no limit by default)
newest_option = click.option("--limit", type=click.IntRange(min=1), help="At most this many traces (newest).")


def _store(ctx, workspace: str, path: str | None):
    return None if path else open_workspace(ctx, workspace).store


def _summary(trace) -> dict:
    from .signals import SignalRules, signal_row

    row = signal_row(trace, SignalRules())
    return {"id": trace.id, "name": trace.name, "status": trace.status, "started_at": trace.started_at.isoformat(),
            "duration_ms": trace.duration_ms, "spans": len(trace.spans), "tokens_in": row["tokens_in"],
            "tokens_out": row["tokens_out"], "cost": row["cost"], "config_ids": list(trace.config_ids),
            "models": list(trace.models), "complete": trace.complete}


def _num(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@click.group()
def traces():
    """Traced LLM/RAG requests: list, show, export, and their monitoring signals."""


@traces.command("ls")
@request_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="At most this many.")
@path_option
@workspace_option
@json_option
@click.pass_context
def ls(ctx, request, limit, path, workspace, json_output):
    """List traces, newest first."""
    from .read import load_traces

    rows = [_summary(t) for t in load_traces(store=_store(ctx, workspace, path), path=path, name=request,
                                             limit=limit)]

    def human():
        if not rows:
            click.echo("no traces")
            return
        print_table(["trace", "started", "request", "status", "ms", "spans", "tokens in/out", "cost"],
                    [[r["id"], r["started_at"][:19], r["name"], r["status"], _num(r["duration_ms"]), r["spans"],
                      f"{_num(r['tokens_in'], 0)}/{_num(r['tokens_out'], 0)}", _num(r["cost"], 6)] for r in rows])

    emit(ctx, rows, human)


def _tree(spans: list[dict]) -> list[tuple[int, dict]]:
    """Spans depth-first from the roots, with their depth."""
    children: dict[str | None, list[dict]] = {}
    ids = {s["span_id"] for s in spans}
    for span in spans:
        parent = span.get("parent_id") if span.get("parent_id") in ids else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, dict]] = []
    stack = [(0, s) for s in reversed(children.get(None, []))]
    while stack:
        depth, span = stack.pop()
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in reversed(children.get(span["span_id"], [])))
    return out


def _brief(attributes: dict, width: int = 90) -> str:
    import json

    text = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                     for k, v in attributes.items() if not k.startswith("tether."))
    return text if len(text) <= width else text[: width - 1] + "…"


@traces.command()
@click.argument("trace")
@path_option
@workspace_option
@json_option
@click.pass_context
def show(ctx, trace, path, workspace, json_output):
    """Show one TRACE (id or unique id prefix): its spans as a tree, and its configs."""
    from .read import find_trace

    rec = find_trace(_store(ctx, workspace, path), trace, path=path)

    def human():
        s = _summary(rec)
        click.echo(f"trace {rec.id}  {rec.name}  {rec.status}  {_num(rec.duration_ms)} ms  {s['started_at']}")
        if rec.config_ids:
            click.echo(f"configs: {', '.join(rec.config_ids)}")
        if rec.models:
            click.echo(f"models: {', '.join(rec.models)}")
        print_table(["span", "type", "status", "ms", "attributes"],
                    [["  " * depth + str(span.get("name")), span.get("type"), span.get("status"),
                      _num(span.get("duration_ms"), 2),
                      _brief(span.get("attributes") or {}) + (f" error={span['error']['type']}: "
                                                               f"{span['error']['message']}" if span.get("error")
                                                               else "")]
                     for depth, span in _tree(list(rec.spans))])

    emit(ctx, rec, human)


@traces.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "otlp-json"]), default="jsonl", show_default=True,
              help="jsonl: one span per line; otlp-json: one OTLP/JSON ExportTraceServiceRequest (extra rag).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="File to write.")
@request_option
@newest_option
@path_option
@workspace_option
@json_option
@click.pass_context
def export(ctx, fmt, out, request, limit, path, workspace, json_output):
    """Write traces to a file as JSONL spans or OTLP/JSON."""
    from .export import write_export
    from .read import load_traces

    found = load_traces(store=_store(ctx, workspace, path), path=path, name=request, limit=limit)
    spans = write_export(found, out, fmt)
    result = {"out": out, "format": fmt, "traces": len(found), "spans": spans}
    emit(ctx, result, lambda: click.echo(f"wrote {len(found)} traces ({spans} spans) to {out} as {fmt}"))


@traces.command()
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True,
              help="Parquet (.parquet) or CSV (.csv) file to write.")
@click.option("--json-schema", "json_schema", type=click.Path(dir_okay=False),
              help="JSON Schema the final output must match (the invalid_format column).")
@request_option
@newest_option
@path_option
@workspace_option
@json_option
@click.pass_context
def signals(ctx, out, json_schema, request, limit, path, workspace, json_output):
    """Write one row of monitoring signals per request (the traces window) to a file, for
    `tether monitor FILE --reference ...` or `tether profile FILE`."""
    from .signals import TracesWindow, write_rows

    window = TracesWindow(path=path, request=request, json_schema=json_schema, limit=limit)
    context = None
    if not path:
        from tether.commands import host_of
        from tether.context import RunContext

        context = RunContext(host=host_of(ctx), workspace=open_workspace(ctx, workspace))
    rows = write_rows(window.batches(context=context), out)
    emit(ctx, {"out": out, "rows": rows}, lambda: click.echo(f"wrote {rows} rows of signals to {out}"))


def register(cli) -> None:
    cli.add_command(traces)
