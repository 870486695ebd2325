"""Reading traces back: from the metadata store (``trace`` records) or from JSONL files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .assemble import Trace, build_trace


def traces_from_spans(spans: Iterable[dict[str, Any]]) -> list[Trace]:
    """``trace`` records built from loose spans (e.g. a JSONL file), newest first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        groups.setdefault(span["trace_id"], []).append(span)
    traces = [build_trace(group, known=lambda _: False)[0] for group in groups.values()]
    return sorted(traces, key=lambda t: t.started_at, reverse=True)


def load_traces(*, store: Any = None, path: str | Path | None = None, name: str | None = None,
                limit: int | None = None) -> list[Trace]:
    """Traces newest first, from JSONL files at ``path`` if given, else from ``store``;
    only those whose root is named ``name``, if given; at most ``limit``."""
    if path is not None:
        from .jsonl import read_spans

        traces = traces_from_spans(read_spans(path))
    else:  # newest first; the store indexes a trace by its root's name
        traces = list(store.find("trace", name=name, limit=limit))
    if name:
        traces = [t for t in traces if t.name == name]
    traces = traces[:limit] if limit is not None else traces
    if path is None:
        from .spans_table import with_spans

        traces = with_spans(store, traces)
    return traces


def find_trace(store: Any, ref: str, *, path: str | Path | None = None) -> Trace:
    """The trace with id (or unique id prefix) ``ref``."""
    from tether.errors import NotFoundError

    if path is None:
        from .spans_table import with_spans

        rec = store.get(ref, kind="trace")
        found = [rec] if rec is not None else store.find("trace", prefix=ref)
        found = with_spans(store, found)
    else:
        found = [t for t in load_traces(path=path) if t.id.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFoundError(f"no trace '{ref}' (list them with: tether traces ls)")
    raise NotFoundError(f"trace prefix '{ref}' is ambiguous: {', '.join(t.id for t in found[:5])}")
