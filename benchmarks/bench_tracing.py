"""Capture overhead per span: tether.tracing vs an uninstrumented call vs a bare
OpenTelemetry SDK span with a BatchSpanProcessor, in one run, interleaved.

Each contender runs the same request shape: a root span with 7 children (8 spans), every
span with 8 attributes, around a trivial function call.

* **plain**: the function calls, no spans;
* **tether**: ``with tracing.span(...)`` with the default configuration, the ``store``
  sink (SQLite in a temporary workspace) and the ``pii`` + ``secrets`` redactors;
* **tether, dropping sink**: the same with a sink that drops every batch (the redactors
  still run), to compare with the OpenTelemetry SDK on equal terms;
* **otel**: ``tracer.start_as_current_span(..., attributes=...)`` on an SDK
  ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter that drops spans (so
  only the SDK's own cost is measured, as for a bare SDK).

Per round and contender, ``capture`` is the time of the loop in the application thread
(with the background writer running, as in an application) and ``drained`` adds the
time to flush everything (tether: truncated, redacted and written to SQLite; OTel:
exported to the dropping exporter). Rounds alternate the contenders; the median round
is reported.

Run: ``python benchmarks/bench_tracing.py [--requests 2000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import conditions  # benchmarks/conditions.py: load average and peak memory

SPANS_PER_REQUEST = 8
TYPES = ("query", "retrieval", "prompt", "guardrail", "tool", "llm", "approval", "output")


def work(i: int) -> int:
    return i * 2


def attributes(i: int) -> dict:
    return {"model": "gpt-4o-mini", "provider": "openai", "input_tokens": 120 + i % 7, "output_tokens": 40,
            "temperature": 0.2, "top_k": 5, "cost": 0.00042, "user_question": "How much is the day pass?"}


def plain(requests: int) -> None:
    for i in range(requests):
        for _ in range(SPANS_PER_REQUEST):
            work(i)


def tether_round(requests: int, span) -> None:
    for i in range(requests):
        with span("query", **attributes(i)):
            work(i)
            for kind in TYPES[1:]:
                with span(kind, **attributes(i)):
                    work(i)


def otel_round(requests: int, tracer) -> None:
    start = tracer.start_as_current_span
    for i in range(requests):
        with start("query", attributes=attributes(i)):
            work(i)
            for kind in TYPES[1:]:
                with start(kind, attributes=attributes(i)):
                    work(i)


def make_otel(max_queue: int):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DroppingExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter(), max_queue_size=max_queue))
    return provider, provider.get_tracer("bench")


class Dropping:
    """A trace sink that keeps nothing."""

    def write(self, spans) -> None:
        pass

    def close(self) -> None:
        pass


def _add(result: dict[str, list[float]], keep: bool, capture: float, drained: float) -> None:
    if keep:
        result["capture"].append(capture)
        result["drained"].append(drained)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (8 spans each)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from tether import tracing
    from tether.manager import PluginHost
    from tether.plugins.traces import start_tracing
    from tether.plugins.traces.setup import build

    spans = args.requests * SPANS_PER_REQUEST
    workspace = tempfile.mkdtemp(prefix="bench-tracing-")
    host = PluginHost(entry_points=False)
    stored = start_tracing(workspace, {"max_queue": spans}, host=host)
    _, redactors, _ = build(None, host=host, workspace=workspace)
    dropping = tracing.Tracer([Dropping()], redactors, max_queue=spans)
    provider, otel = make_otel(spans)
    names = ("plain", "tether", "tether-drop", "otel")
    results: dict[str, dict[str, list[float]]] = {n: {"capture": [], "drained": []} for n in names}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is not kept
        keep = round_ > 0
        t = timed(lambda: plain(args.requests))
        _add(results["plain"], keep, t, t)
        for name, tracer, span in (("tether", stored, tracing.span), ("tether-drop", dropping, dropping.span)):
            t = timed(lambda span=span: tether_round(args.requests, span))
            _add(results[name], keep, t, t + timed(lambda tracer=tracer: tracer.flush(600)))
        t = timed(lambda: otel_round(args.requests, otel))
        _add(results["otel"], keep, t, t + timed(provider.force_flush))
    stats = stored.stats()
    stored.shutdown(60), dropping.shutdown(60)
    provider.shutdown()
    per_span = {name: {phase: statistics.median(v) / spans * 1e6 for phase, v in phases.items()}
                for name, phases in results.items()}
    overhead = {name: {phase: per_span[name][phase] - per_span["plain"][phase] for phase in ("capture", "drained")}
                for name in names[1:]}
    print(f"{spans:,} spans a round ({args.requests:,} requests of {SPANS_PER_REQUEST}, 8 attributes each), "
          f"{args.rounds} interleaved rounds, median round")
    print(f"{'':<48} {'capture µs/span':>16} {'drained µs/span':>16}")
    print(f"{'plain call (no span)':<48} {per_span['plain']['capture']:>16.2f} {per_span['plain']['drained']:>16.2f}")
    labels = {"tether": "tether.tracing (store sink, redactors)", "tether-drop": "tether.tracing (dropping sink)",
              "otel": "OpenTelemetry SDK (batch, dropping)"}
    for name, label in labels.items():
        print(f"{label + ' overhead':<48} {overhead[name]['capture']:>16.2f} {overhead[name]['drained']:>16.2f}")
    for name in ("tether", "tether-drop"):
        print(f"otel / {name} overhead: capture {overhead['otel']['capture'] / overhead[name]['capture']:.1f}x, "
              f"drained {overhead['otel']['drained'] / overhead[name]['drained']:.1f}x")
    print(f"tether writer: {json.dumps(stats)}")
    print(conditions.describe())


if __name__ == "__main__":
    main()
