"""Helpers for the trace tests: an in-memory sink and a real OTLP/HTTP receiver."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MemorySink:
    """A trace sink keeping every span it is given."""

    name = "memory"

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.closed = False

    def write(self, spans):
        self.spans.extend(spans)

    def close(self):
        self.closed = True


class OtlpReceiver:
    """A small OTLP/HTTP trace receiver on 127.0.0.1: decodes every POSTed
    ExportTraceServiceRequest (protobuf) with opentelemetry-proto and keeps the spans as
    ``{"name", "trace_id", "span_id", "parent_id", "kind", "status", "attributes",
    "events", "resource"}`` dicts."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.accept(self.path, self.headers.get("Content-Type", ""), body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def accept(self, path: str, content_type: str, body: bytes) -> None:
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.requests += 1
        for rs in request.resource_spans:
            resource = {a.key: MessageToDict(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex() or None, "kind": span.kind,
                        "status": span.status.code, "resource": resource,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "events": [{"name": e.name, "attributes": {a.key: _value(a.value) for a in e.attributes}}
                                   for e in span.events],
                    })

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value):
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, which) if which else None
