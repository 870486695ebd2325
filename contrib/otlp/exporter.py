"""The ``otlp`` trace sink and the OTLP/JSON encoding, through the OpenTelemetry SDK."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import attrs
from tether.backends import TraceSink
from tether.errors import ConfigError, StoreError
from tether.validators import above

from .convention import convert


def _endpoint(inst, attribute, value) -> None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL such as http://127.0.0.1:4318/v1/traces, got {value!r}",
                          key=attribute.name)


def _headers(inst, attribute, value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"expected a mapping of header name -> text, got {value!r}", key=attribute.name)


def _trace_id(text: str) -> int:
    return int(text.removeprefix("trace-"), 16)


def sdk_spans(spans: list[dict[str, Any]], *, service_name: str = "tether-app") -> list[Any]:
    """OpenTelemetry SDK ``ReadableSpan`` s for tether span dicts."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode
    from tether import __version__

    resource = Resource.create({"service.name": service_name})
    scope = InstrumentationScope("tether.tracing", __version__)
    out = []
    for span in spans:
        name, kind, attributes = convert(span)
        trace_id = _trace_id(span["trace_id"])
        context = SpanContext(trace_id, int(span["span_id"], 16), is_remote=False, trace_flags=TraceFlags(1))
        parent = (SpanContext(trace_id, int(span["parent_id"], 16), is_remote=False, trace_flags=TraceFlags(1))
                  if span.get("parent_id") else None)
        error = span.get("error")
        status = (Status(StatusCode.ERROR, f"{error.get('type')}: {error.get('message')}") if error
                  else Status(StatusCode.ERROR, "unfinished") if span.get("status") == "unfinished"
                  else Status(StatusCode.OK))
        events = [Event("exception", {"exception.type": str(error.get("type")),
                                      "exception.message": str(error.get("message"))},
                        span.get("end_ns") or span["start_ns"])] if error else []
        out.append(ReadableSpan(name=name, context=context, parent=parent, resource=resource, attributes=attributes,
                                events=events, kind=SpanKind[kind], status=status, start_time=span["start_ns"],
                                end_time=span.get("end_ns") or span["start_ns"], instrumentation_scope=scope))
    return out


def otlp_json(spans: list[dict[str, Any]], *, service_name: str = "tether-app") -> dict[str, Any]:
    """An OTLP/JSON ``ExportTraceServiceRequest`` of ``spans`` (ids as hex, as OTLP/JSON
    requires)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    document = MessageToDict(encode_spans(sdk_spans(spans, service_name=service_name)))
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return document


@attrs.define(kw_only=True)
class OtlpSink(TraceSink):
    """Spans over OTLP/HTTP (protobuf) to ``endpoint``, with ``gen_ai.*`` and OpenInference
    attributes. ``headers`` (e.g. an API key, written as ``${ENV}``) are never printed."""

    name: ClassVar[str] = "otlp"
    requires: ClassVar[tuple[str, ...]] = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
    extra: ClassVar[str] = "rag"
    endpoint: str = attrs.field(default="http://127.0.0.1:4318/v1/traces", validator=_endpoint)
    headers: dict[str, str] = attrs.field(factory=dict, validator=_headers, repr=False)
    timeout: float = attrs.field(default=10.0, validator=above(0))
    service_name: str = "tether-app"
    _exporter: Any = attrs.field(default=None, init=False, repr=False)

    def _get_exporter(self) -> Any:
        if self._exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self._exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=dict(self.headers),
                                              timeout=self.timeout)
        return self._exporter

    def write(self, spans: list[dict[str, Any]]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = self._get_exporter().export(sdk_spans(spans, service_name=self.service_name))
        if result is not SpanExportResult.SUCCESS:
            raise StoreError(f"OTLP export to {self.endpoint} failed ({len(spans)} spans)")

    def close(self) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()
            self._exporter = None

    def describe(self) -> str:
        return f"otlp:{self.endpoint}"
