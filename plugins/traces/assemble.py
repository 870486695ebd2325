"""Traces as records: spans grouped by trace, summarised, and linked to their configs.

A ``trace`` record (id ``trace-<32 hex>``) holds every span of one request and the ids of
the config records they name, with a lineage edge from each (prompt template, retrieval
config, tool definition, guardrail config, index snapshot, model version) to the trace.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from tether.records import record, utcnow

#: span attribute -> lineage relation; ``config_id`` takes the span's type as relation
LINK_KEYS = {"template_id": "prompt", "retrieval_config_id": "retrieval", "tool_id": "tool",
             "guardrail_id": "guardrail", "index_snapshot": "index", "model_version_id": "model",
             "question_set_id": "questions"}
STATUS_ORDER = {"ok": 0, "unfinished": 1, "error": 2}


@record("trace")
class Trace:
    """One request: its spans (dicts as the sinks receive them) and what it was made with."""

    id: str
    name: str
    status: str  # ok | error | unfinished: the worst of its spans
    started_at: dt.datetime
    duration_ms: float | None
    spans: tuple[dict[str, Any], ...]  # empty when a SQL store keeps them in its trace_spans table
    config_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # provider/model@version of its model calls
    complete: bool = True  # False when written before its root span ended (see docs/traces.md)
    span_count: int = 0
    created_at: dt.datetime = attrs.field(factory=utcnow)


def links(spans: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(record id, relation)`` for every config a span of the trace names, in order."""
    out: dict[str, str] = {}
    for span in spans:
        attributes = span.get("attributes") or {}
        for key, relation in (*LINK_KEYS.items(), ("config_id", span.get("type", "config"))):
            value = attributes.get(key)
            if isinstance(value, str) and value and value not in out:
                out[value] = relation
    return list(out.items())


def model_of(span: dict[str, Any]) -> str | None:
    attributes = span.get("attributes") or {}
    model = attributes.get("model")
    if span.get("type") != "llm" or not isinstance(model, str):
        return None
    provider, version = attributes.get("provider"), attributes.get("model_version")
    return f"{provider + '/' if provider else ''}{model}{'@' + str(version) if version else ''}"


def root_of(spans: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((s for s in spans if not s.get("parent_id")), None)


def build_trace(spans: list[dict[str, Any]], *, known: Callable[[str], bool]) -> tuple[Trace, list[tuple[str, str]]]:
    """The ``trace`` record of ``spans`` (one trace) and its lineage parents: the linked ids
    for which ``known(id)`` is true (records in the store)."""
    spans = sorted(spans, key=lambda s: (s.get("start_ns") or 0, s.get("span_id")))
    root = root_of(spans)
    first = root or spans[0]
    start = min(s.get("start_ns") or 0 for s in spans)
    status = max((s.get("status", "ok") for s in spans), key=lambda v: STATUS_ORDER.get(v, 2))
    linked = links(spans)
    models = tuple(dict.fromkeys(m for m in map(model_of, spans) if m))
    rec = Trace(id=first["trace_id"], name=str(first.get("name") or first.get("type")), status=status,
                started_at=dt.datetime.fromtimestamp(start / 1e9, dt.timezone.utc),
                duration_ms=root.get("duration_ms") if root else None, spans=tuple(spans),
                config_ids=tuple(i for i, _ in linked), models=models, complete=root is not None,
                span_count=len(spans))
    return rec, [(i, relation) for i, relation in linked if known(i)]


def merge_spans(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` and ``new`` spans, a span id kept once (the later copy wins)."""
    by_id = {s["span_id"]: s for s in old}
    by_id.update({s["span_id"]: s for s in new})
    return list(by_id.values())
