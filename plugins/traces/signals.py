"""Monitoring signals from traces: one row per request, and the ``traces`` window.

Each trace becomes a row of the columns in :data:`COLUMNS`, so the drift monitor's tests,
health checks (``expect: {latency_ms: {max: 5000}}``) and alert rules
(``drift.column.refused``) apply to LLM behaviour unchanged. What each column reads is
documented in docs/traces.md (*Signals*).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import Window
from tether.errors import ConfigError, DataError, PluginError
from tether.validators import at_least

#: phrases that mark a refusal when an output span does not say ``refused`` itself
DEFAULT_REFUSALS = (r"\bI (?:can(?:'|no)t|am unable to|won't) (?:help|answer|assist|provide)",
                    r"\bI'm (?:sorry|afraid),? (?:but )?I (?:can(?:'|no)t|am unable)",
                    r"\bI do not have (?:enough )?information")
COMPONENTS = ("retrieval", "prompt", "llm", "guardrail", "tool", "approval")
#: column -> Arrow type name
COLUMNS: dict[str, str] = {
    "started_at": "timestamp", "name": "string", "error": "float64", "invalid_format": "float64",
    "refused": "float64", "guardrail_triggered": "float64", "empty_retrieval": "float64",
    "retrieval_top_score": "float64", "tokens_in": "float64", "tokens_out": "float64", "cost": "float64",
    "latency_ms": "float64", **{f"latency_{c}_ms": "float64" for c in COMPONENTS},
    "llm_calls": "float64", "tool_calls": "float64", "tool_failed": "float64", "human_corrected": "float64",
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(bool(value))


def _of(spans, kind: str) -> list[dict[str, Any]]:
    return [s for s in spans if s.get("type") == kind]


def _sum(spans, key: str) -> float | None:
    values = [v for v in (_number((s.get("attributes") or {}).get(key)) for s in spans) if v is not None]
    return float(sum(values)) if values else None


class SignalRules:
    """How output text is judged: the JSON Schema it must match and refusal phrases."""

    def __init__(self, schema: dict | None = None, refusals: tuple[str, ...] = DEFAULT_REFUSALS) -> None:
        self.validator = None
        if schema is not None:
            try:
                import jsonschema
            except ImportError:
                from tether.extras import install_hint

                raise PluginError(f"json_schema needs jsonschema: {install_hint(['rag'])}") from None

            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validator = cls(schema)
        self.refusals = [re.compile(p, re.IGNORECASE) for p in refusals]

    def invalid_format(self, output: dict[str, Any]) -> bool | None:
        attributes = output.get("attributes") or {}
        text = attributes.get("text")
        if self.validator is None and attributes.get("format") != "json":
            return None
        if not isinstance(text, str):
            return True
        try:
            value = json.loads(text)
        except ValueError:
            return True
        return self.validator is not None and not self.validator.is_valid(value)

    def refused(self, output: dict[str, Any]) -> bool | None:
        attributes = output.get("attributes") or {}
        if isinstance(attributes.get("refused"), bool):
            return attributes["refused"]
        text = attributes.get("text")
        return any(p.search(text) for p in self.refusals) if isinstance(text, str) else None


def signal_row(trace: Any, rules: SignalRules) -> dict[str, Any]:
    """The signals of one trace (see :data:`COLUMNS`)."""
    spans = trace.spans
    outputs, retrievals, tools = _of(spans, "output"), _of(spans, "retrieval"), _of(spans, "tool")
    output = outputs[-1] if outputs else None
    first = (retrievals[0].get("attributes") or {}) if retrievals else {}
    scores = [v for v in (_number(x) for x in first.get("scores") or []) if v is not None]
    chunk_ids = first.get("chunk_ids")
    row = {
        "started_at": trace.started_at, "name": trace.name, "error": _flag(trace.status == "error"),
        "invalid_format": _flag(rules.invalid_format(output)) if output else None,
        "refused": _flag(rules.refused(output)) if output else None,
        "guardrail_triggered": _flag(any((s.get("attributes") or {}).get("triggered") is True
                                         for s in _of(spans, "guardrail"))) if _of(spans, "guardrail") else None,
        "empty_retrieval": _flag(not chunk_ids) if retrievals else None,
        "retrieval_top_score": max(scores) if scores else None,
        "tokens_in": _sum(_of(spans, "llm"), "input_tokens"), "tokens_out": _sum(_of(spans, "llm"), "output_tokens"),
        "cost": _sum(spans, "cost"), "latency_ms": trace.duration_ms,
        "llm_calls": float(len(_of(spans, "llm"))), "tool_calls": float(len(tools)),
        "tool_failed": _flag(any(s.get("status") == "error" or (s.get("attributes") or {}).get("error")
                                 for s in tools)) if tools else None,
        "human_corrected": _flag(any((s.get("attributes") or {}).get("corrected") is True
                                     for s in _of(spans, "approval"))) if _of(spans, "approval") else None,
    }
    for component in COMPONENTS:
        durations = [s["duration_ms"] for s in _of(spans, component) if _number(s.get("duration_ms")) is not None]
        row[f"latency_{component}_ms"] = float(sum(durations)) if durations else None
    return row


def arrow_schema():
    import pyarrow as pa

    types = {"timestamp": pa.timestamp("us", tz="UTC"), "string": pa.string(), "float64": pa.float64()}
    return pa.schema([(name, types[t]) for name, t in COLUMNS.items()])


def _refusals(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list of regular expressions, got {value!r}", key="refusal_patterns")
    for i, pattern in enumerate(value):
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"invalid regular expression {pattern!r}: {exc}", key=f"refusal_patterns[{i}]") from None
    return tuple(value)


@attrs.frozen(kw_only=True)
class TracesWindow(Window):
    """One row of signals per traced request, from the workspace's store (or JSONL files at
    ``path``); ``json_schema`` is a JSON or YAML file the final output must match;
    ``refusal_patterns`` (regular expressions) replace the built-in refusal phrases."""

    name: ClassVar[str] = "traces"
    path: str | None = None
    request: str | None = None  # only traces whose root span has this name
    json_schema: str | None = None
    refusal_patterns: Any = attrs.field(default=(), converter=_refusals)  # empty: DEFAULT_REFUSALS
    limit: int | None = attrs.field(default=None, validator=at_least(1))
    batch_rows: int = attrs.field(default=10_000, validator=at_least(1))

    def rules(self, context: Any) -> SignalRules:
        schema = None
        if self.json_schema:
            from tether.documents import read_yaml_file

            path = context.resolve_path(self.json_schema) if context is not None else Path(self.json_schema)
            schema = read_yaml_file(path, "JSON Schema")  # YAML is a superset of JSON
            if not isinstance(schema, dict):
                raise DataError(f"{path}: a JSON Schema must be a mapping")
        try:
            return SignalRules(schema, self.refusal_patterns or DEFAULT_REFUSALS)
        except PluginError:
            raise
        except Exception as exc:  # jsonschema.SchemaError
            raise DataError(f"{self.json_schema}: not a valid JSON Schema: {str(exc).splitlines()[0]}") from None

    def rows(self, *, context: Any) -> list[dict[str, Any]]:
        from .read import load_traces

        rules = self.rules(context)
        path = None
        if self.path:
            path = context.resolve_path(self.path) if context is not None else Path(self.path)
        store = context.store if path is None else None
        traces = load_traces(store=store, path=path, name=self.request, limit=self.limit)
        return [signal_row(t, rules) for t in sorted(traces, key=lambda t: t.started_at)]

    def batches(self, *, context: Any) -> Iterator[Any]:
        import pyarrow as pa

        rows, schema = self.rows(context=context), arrow_schema()
        if not rows:
            yield pa.RecordBatch.from_pylist([], schema=schema)
        for start in range(0, len(rows), self.batch_rows):
            yield pa.RecordBatch.from_pylist(rows[start:start + self.batch_rows], schema=schema)

    def time_column_of(self, *, context: Any) -> str | None:
        return "started_at"

    def describe(self) -> str:
        return f"traces:{self.path or 'store'}{':' + self.request if self.request else ''}"


def write_rows(batches: Iterator[Any], out: str | Path) -> int:
    """Write signal batches to a Parquet or CSV file (by suffix), atomically; the row count."""
    import os
    import tempfile

    import pyarrow as pa

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out: expected a .parquet or .csv file, got '{out}'")
    table = pa.Table.from_batches(list(batches), schema=arrow_schema())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return table.num_rows
