"""Trace capture for LLM and RAG applications: spans, their context, and the writer.

A request is a tree of spans: the query, retrieval, prompt rendering, model calls,
guardrail checks, tool calls, human approvals and the final output. Open one with the
context manager or the decorator; spans nest through :mod:`contextvars`, so the parent
is right in threads (each thread starts a new trace unless it runs in a copied context)
and in asyncio tasks (each task inherits the span that created it)::

    from tether import tracing

    with tracing.span("query", text=question) as root:
        with tracing.span("retrieval", top_k=5, index_snapshot="snap-…") as s:
            s.set(chunk_ids=ids, scores=scores)

        @tracing.traced("tool")
        async def search_web(q): ...

Capturing costs a few microseconds and never blocks: a finished span goes into a bounded
in-memory queue, and a background thread turns it into a plain dict (JSON-safe values,
long strings truncated with the hash of the full text kept), runs the redactors over
every string, and hands batches to the sinks. A sink that fails or stalls loses spans
(counted in :meth:`Tracer.stats`, warned once), never the application. ``flush()`` waits
for the queue to drain; at interpreter exit the tracer flushes and closes spans left
open with status ``unfinished``.

Nothing here imports more than the standard library; sinks and redactors are backends
(kinds ``trace_sink`` and ``redactor``) built by :mod:`tether.plugins.traces`.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import hashlib
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

#: Span types and the OpenInference span kind each maps to (see docs/traces.md).
SPAN_TYPES: dict[str, str] = {
    "query": "CHAIN",
    "retrieval": "RETRIEVER",
    "prompt": "PROMPT",
    "llm": "LLM",
    "embedding": "EMBEDDING",
    "guardrail": "GUARDRAIL",
    "tool": "TOOL",
    "approval": "CHAIN",
    "output": "CHAIN",
    "span": "CHAIN",
}

#: Status of a span: ``ok``, ``error`` (an exception left it) or ``unfinished`` (still
#: open when the tracer shut down).
STATUSES = ("ok", "error", "unfinished")

MASK = "***"
UNSERIALISABLE = "!unserialisable"
TRUNCATED = "…[truncated]"

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("tether_span", default=None)
_rand = random.Random()
if hasattr(os, "register_at_fork"):  # forked workers must not repeat their parent's ids
    os.register_at_fork(after_in_child=_rand.seed)


class Span:
    """One unit of work in a trace. Set attributes with :meth:`set`; a span is ended by
    the context manager or decorator that opened it (or :meth:`end`)."""

    __slots__ = ("_token", "_tracer", "attributes", "end_ns", "error", "name", "parent", "parent_id", "span_id",
                 "start_ns", "status", "trace_id", "type")

    def __init__(self, tracer: Tracer, type: str, name: str, parent: Span | None, attributes: dict) -> None:
        self._tracer = tracer
        self.type = type
        self.name = name
        self.attributes = attributes
        self.parent = parent
        if parent is None:
            self.trace_id = _rand.getrandbits(128) or 1
            self.parent_id = 0
        else:
            self.trace_id = parent.trace_id
            self.parent_id = parent.span_id
        self.span_id = _rand.getrandbits(64) or 1
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.status = "ok"
        self.error: tuple[str, str] | None = None
        self._token = None

    @property
    def trace(self) -> str:
        """The trace id as stored (``trace-<32 hex>``)."""
        return f"trace-{self.trace_id:032x}"

    def set(self, **attributes: Any) -> Span:
        """Add or replace attributes (any value; non-JSON ones are stringified later)."""
        self.attributes.update(attributes)
        return self

    def record_error(self, exc: BaseException) -> None:
        """Mark the span failed with ``exc`` (type and message; redacted before storage)."""
        self.status = "error"
        self.error = (type(exc).__name__, str(exc))

    def end(self, status: str | None = None) -> None:
        """End the span (once; later calls do nothing), make its parent current again and
        queue it for the sinks."""
        if self._token is not None:
            token, self._token = self._token, None
            current = _current.get()
            while current is not None and current is not self:
                current = current.parent
            if current is self:  # this span (or one inside it) is current here: back to before it
                try:
                    _current.reset(token)
                except ValueError:  # ended in another context (a generator moved between tasks)
                    _current.set(self.parent)
        if self.end_ns:
            return
        self.end_ns = time.time_ns()
        if status is not None:
            self.status = status
        self._tracer._finish(self)

    def __enter__(self) -> Span:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.record_error(exc)
        self.end()


class Tracer:
    """Captures spans into a bounded queue that a background thread drains into ``sinks``.

    :param sinks: objects with ``write(spans: list[dict])`` and ``close()``.
    :param redactors: objects with ``redact(text) -> str``, applied in order to every
        string of a span (name, attribute values at any depth, error message) before any
        sink sees it; they must depend on the text only (results for short strings are
        cached). If one raises, the span is fully masked (see docs/traces.md).
    :param max_queue: spans held while the sinks catch up; more are dropped and counted.
    :param batch_size: spans handed to a sink per ``write``.
    :param interval: seconds between writes when the queue holds less than a batch.
    :param max_value_chars: longer strings are cut to this length; the SHA-256 of the full
        text is kept under ``tether.truncated``.
    """

    def __init__(self, sinks: Iterable[Any] = (), redactors: Iterable[Any] = (), *, max_queue: int = 10_000,
                 batch_size: int = 512, interval: float = 0.5, max_value_chars: int = 65_536,
                 logger: Any = None) -> None:
        if max_queue < 1 or batch_size < 1 or max_value_chars < 64 or interval <= 0:
            raise ValueError("max_queue and batch_size must be >= 1, max_value_chars >= 64, interval > 0")
        self.sinks = list(sinks)
        self.redactors = list(redactors)
        self.max_queue, self.batch_size, self.interval = max_queue, batch_size, interval
        self.max_value_chars = max_value_chars
        self._queue: deque[Span] = deque()
        self._open: dict[int, Span] = {}
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0  # spans taken from the queue and not yet written
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._log = logger
        self._warned: set[str] = set()
        self._redacted: dict[str, str] = {}  # used by the writer thread only
        self.counts = {"captured": 0, "written": 0, "dropped": 0, "sink_errors": 0, "redaction_failures": 0,
                       "unfinished": 0}

    # -- capture (application threads) ---------------------------------------------------

    def span(self, type: str = "span", name: str | None = None, **attributes: Any) -> Span:
        """A new span, child of the current one; use it as a context manager."""
        span = Span(self, type, name or type, _current.get(), attributes)
        self._open[span.span_id] = span
        return span

    def start_span(self, type: str = "span", name: str | None = None, **attributes: Any) -> Span:
        """A span made current until :meth:`Span.end` is called on it (or the tracer
        shuts down, which ends it as ``unfinished``). Prefer :meth:`span`."""
        span = self.span(type, name, **attributes)
        span._token = _current.set(span)
        return span

    def _finish(self, span: Span) -> None:
        self._open.pop(span.span_id, None)
        if not self.sinks or self._closed:
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._drop(1, "queue full: the trace sinks are slower than the application or down")
            return
        queue.append(span)
        self.counts["captured"] += 1
        if self._thread is None:
            self._start()
        elif len(queue) >= self.batch_size:
            self._wake.set()

    def _drop(self, n: int, reason: str) -> None:
        with self._lock:
            self.counts["dropped"] += n
        self.warn_once("dropped", "trace spans dropped", reason=reason)

    def warn_once(self, key: str, event: str, **fields: Any) -> None:
        """Log ``event`` the first time ``key`` is seen (through the structlog logger)."""
        if key in self._warned:
            return
        self._warned.add(key)
        log = self._log
        if log is None:
            from .log import get_logger

            log = self._log = get_logger("tether.tracing")
        log.warning(event, **fields)

    # -- the writer thread ----------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tether-trace-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # the writer outlives anything a sink or logger throws at it
                with self._idle:
                    self._pending = 0
            if self._closed and not self._queue:
                self._close_sinks()  # in this thread: sinks may hold thread-bound connections
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            with self._idle:  # taken under the lock flush() waits on, so it never sees a gap
                batch = [queue.popleft() for _ in range(min(len(queue), self.batch_size))]
                self._pending = len(batch)
            try:
                self._write(self._prepare_all(batch))
            finally:
                with self._idle:
                    self._pending = 0
                    self._idle.notify_all()
        with self._idle:
            self._idle.notify_all()

    def _prepare_all(self, batch: list[Span]) -> list[dict]:
        out = []
        for span in batch:
            try:
                out.append(self.prepare(span))
            except Exception as exc:  # never let one odd span stop the writer
                self._drop(1, f"a span could not be prepared: {type(exc).__name__}")
        return out

    def _write(self, spans: list[dict]) -> None:
        if not spans:
            return
        for sink in self.sinks:
            try:
                sink.write(spans)
            except Exception as exc:  # a failing sink must not stop the others or the app
                with self._lock:
                    self.counts["sink_errors"] += len(spans)
                self.warn_once(f"sink:{id(sink)}", "trace sink failed; its spans are lost",
                               sink=getattr(sink, "name", type(sink).__name__), error=type(exc).__name__,
                               detail=str(exc)[:200])
            else:
                with self._lock:
                    self.counts["written"] += len(spans)

    # -- turning a span into what sinks receive ------------------------------------------

    def prepare(self, span: Span) -> dict[str, Any]:
        """The span as a JSON-safe dict, truncated and redacted (what every sink gets)."""
        notes: dict[str, Any] = {}
        limit = self.max_value_chars
        attributes = {}
        for key, value in list(span.attributes.items()):  # a copy: the app may still set attributes
            kind = type(value)  # fast path for the common plain values
            if (kind is str and len(value) <= limit) or kind is int or kind is bool or value is None:
                attributes[key] = value
            else:
                attributes[str(key)] = _jsonable(value, limit, str(key), notes)
        out = {
            "trace_id": f"trace-{span.trace_id:032x}",
            "span_id": f"{span.span_id:016x}",
            "parent_id": f"{span.parent_id:016x}" if span.parent_id else None,
            "type": str(span.type),
            "name": _jsonable(span.name, self.max_value_chars, "name", notes),
            "start_ns": span.start_ns,
            "end_ns": span.end_ns,
            "duration_ms": round((span.end_ns - span.start_ns) / 1e6, 6) if span.end_ns else None,
            "status": span.status,
            "error": ({"type": span.error[0],
                       "message": _jsonable(span.error[1], self.max_value_chars, "error", notes)}
                      if span.error else None),
            "attributes": attributes,
        }
        if notes.get("truncated"):
            attributes["tether.truncated"] = notes["truncated"]
        if notes.get("unserialisable"):
            attributes["tether.unserialisable"] = sorted(set(notes["unserialisable"]))
        return self._redact(out)

    def _redact(self, span: dict[str, Any]) -> dict[str, Any]:
        if not self.redactors:
            return span
        try:
            for field in ("name", "attributes", "error"):
                span[field] = _map_strings(span[field], self._apply_redactors)
            return span
        except Exception as exc:  # a broken redactor: keep no text of this span at all
            with self._lock:
                self.counts["redaction_failures"] += 1
            self.warn_once("redactor", "a trace redactor failed; the span is stored fully masked",
                           error=type(exc).__name__)
            for field in ("name", "attributes", "error"):
                span[field] = _map_strings(span[field], lambda _: MASK)
            span["attributes"]["tether.redaction_failed"] = True
            return span

    def _apply_redactors(self, text: str) -> str:
        cache = self._redacted  # short strings repeat (models, names, settings): redact each once
        if len(text) <= 256:
            hit = cache.get(text)
            if hit is not None:
                return hit
        original = text
        for redactor in self.redactors:
            text = redactor.redact(text)
            if not isinstance(text, str):
                raise TypeError(f"redactor {type(redactor).__name__} returned {type(text).__name__}, not str")
        if len(original) <= 256:
            if len(cache) >= 8192:
                cache.clear()
            cache[original] = text
        return text

    # -- flushing and shutdown -------------------------------------------------------------

    def flush(self, timeout: float = 5.0, *, close_open: bool = False) -> bool:
        """Write every queued span now; ``False`` if the sinks did not finish in ``timeout``
        seconds (the spans stay queued; the application is never blocked longer). With
        ``close_open``, spans still open are first ended with status ``unfinished``."""
        if close_open:
            self.close_open_spans()
        if self._thread is None:
            if not self._queue:
                return True
            self._start()
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return not (self._queue or self._pending)
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close_open_spans(self) -> int:
        """End every span still open with status ``unfinished``; how many there were."""
        spans = list(self._open.values())[::-1]  # newest first: children end before their parents
        for span in spans:
            span.end("unfinished")
        with self._lock:
            self.counts["unfinished"] += len(spans)
        if spans:
            self.warn_once("unfinished", "trace spans were never ended; stored as unfinished", count=len(spans))
        return len(spans)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Close open spans as ``unfinished``, flush, stop the writer and close the sinks."""
        done = self.flush(timeout, close_open=True)
        if self._closed:
            return done
        self._closed = True
        self._wake.set()
        if self._thread is None:
            self._close_sinks()
        else:
            self._thread.join(max(0.0, min(timeout, 2.0)))
        if not done:
            left = len(self._queue)
            self._drop(left, f"{left} spans still queued at shutdown (sink too slow)")
        return done

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.warn_once(f"close:{id(sink)}", "trace sink failed to close", error=type(exc).__name__,
                               detail=str(exc)[:200])

    def stats(self) -> dict[str, int]:
        """Counts: captured, written (per sink), dropped (queue full or left at shutdown),
        sink_errors (spans a sink failed to take), redaction_failures, unfinished, queued."""
        return {**self.counts, "queued": len(self._queue), "open": len(self._open)}


# --- values ---------------------------------------------------------------------------------


def _jsonable(value: Any, limit: int, key: str, notes: dict[str, Any], depth: int = 0) -> Any:
    """``value`` made JSON-safe: long strings cut (hash of the full text noted), other
    objects stringified with a marker, non-finite floats as strings."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        notes.setdefault("truncated", {})[key] = {"chars": len(value), "sha256": digest}
        return value[:limit] + TRUNCATED
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth < 8:
        if isinstance(value, dict):
            return {str(k): _jsonable(v, limit, f"{key}.{k}", notes, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v, limit, f"{key}[{i}]", notes, depth + 1) for i, v in enumerate(value)]
    notes.setdefault("unserialisable", []).append(key)
    try:
        text = str(value)
    except Exception as exc:
        text = f"<str() failed: {type(exc).__name__}>"
    return _jsonable(f"{UNSERIALISABLE} {type(value).__module__}.{type(value).__qualname__}: {text}",
                     limit, key, notes, depth)


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it (dict keys are names, kept)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return value


def text_hash(text: str) -> str:
    """``sha256:<hex>`` of ``text`` (e.g. a rendered prompt), to store instead of the text."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- the process-wide tracer ----------------------------------------------------------------

_tracer = Tracer()
_atexit_registered = False


def configure(sinks: Iterable[Any] = (), redactors: Iterable[Any] = (), **options: Any) -> Tracer:
    """Install a new process-wide tracer (the previous one is shut down first) and return
    it. Without sinks, spans are tracked for nesting but not kept. Most applications call
    :func:`tether.plugins.traces.start_tracing`, which builds the sinks and redactors a
    configuration names."""
    global _tracer, _atexit_registered
    new = Tracer(sinks, redactors, **options)
    old, _tracer = _tracer, new
    old.shutdown()
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True
    return new


def _at_exit() -> None:
    _tracer.shutdown(timeout=5.0)


def get_tracer() -> Tracer:
    """The process-wide tracer."""
    return _tracer


def span(type: str = "span", name: str | None = None, **attributes: Any) -> Span:
    """A span of ``type`` (see :data:`SPAN_TYPES`) on the process-wide tracer, child of the
    current span; use it as a context manager. Exceptions are recorded and re-raised."""
    return _tracer.span(type, name, **attributes)


def current_span() -> Span | None:
    """The innermost open span of this thread or task, if any."""
    return _current.get()


def flush(timeout: float = 5.0, *, close_open: bool = False) -> bool:
    """Write every queued span of the process-wide tracer now (see :meth:`Tracer.flush`)."""
    return _tracer.flush(timeout, close_open=close_open)


def traced(type: str = "span", name: str | None = None, **attributes: Any) -> Callable:
    """Decorator: run the function (sync or ``async``) inside a span named after it."""

    import inspect

    def wrap(fn: Callable) -> Callable:
        label = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with _tracer.span(type, label, **attributes):
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _tracer.span(type, label, **attributes):
                return fn(*args, **kwargs)

        return wrapper

    return wrap
