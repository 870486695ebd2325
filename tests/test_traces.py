"""Trace capture (tether.tracing): nesting across threads and asyncio, errors, the
background writer, and bad input (sink down or stalled, span never ended,
non-serialisable values, a 10 MB prompt, a redactor that raises)."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import threading

import pytest
from tether import tracing
from tether.errors import ConfigError
from traces_helpers import MemorySink


@pytest.fixture
def sink():
    memory = MemorySink()
    tracing.configure([memory], interval=0.05)
    yield memory
    tracing.configure()  # back to a tracer without sinks


def by_name(spans):
    return {s["name"]: s for s in spans}


def test_nested_spans_share_the_trace_and_point_at_their_parent(sink):
    with tracing.span("query", "ask", text="what is tether?") as root:
        with tracing.span("retrieval", top_k=3) as ret:
            ret.set(chunk_ids=["d1#0", "d2#1"], scores=[0.9, 0.4])
        with tracing.span("llm", provider="local", model="echo", input_tokens=12):
            pass
    assert tracing.flush()
    spans = by_name(sink.spans)
    assert set(spans) == {"ask", "retrieval", "llm"}
    assert {s["trace_id"] for s in spans.values()} == {root.trace}
    assert spans["ask"]["parent_id"] is None
    assert spans["retrieval"]["parent_id"] == spans["llm"]["parent_id"] == spans["ask"]["span_id"]
    assert spans["retrieval"]["attributes"] == {"top_k": 3, "chunk_ids": ["d1#0", "d2#1"], "scores": [0.9, 0.4]}
    assert spans["ask"]["end_ns"] >= spans["llm"]["end_ns"] >= spans["llm"]["start_ns"] > 0
    assert tracing.current_span() is None


def test_exceptions_are_recorded_on_the_span_and_re_raised(sink):
    @tracing.traced("tool", tool="search")
    def search(q):
        raise TimeoutError(f"no answer for {q}")

    with pytest.raises(TimeoutError), tracing.span("query"):
        search("x")
    assert tracing.flush()
    spans = by_name(sink.spans)
    assert spans["test_exceptions_are_recorded_on_the_span_and_re_raised.<locals>.search"]["error"] == {
        "type": "TimeoutError", "message": "no answer for x"}
    assert {s["status"] for s in sink.spans} == {"error"}  # the exception left both spans


def test_concurrent_asyncio_tasks_keep_their_own_parents(sink):
    @tracing.traced("tool")
    async def fetch(label):
        await asyncio.sleep(0.01)
        with tracing.span("span", f"inner-{label}"):
            await asyncio.sleep(0.01)
        return label

    async def request(label):
        with tracing.span("query", f"request-{label}"):
            return await asyncio.gather(fetch(label), fetch(label))

    async def main():
        return await asyncio.gather(request("a"), request("b"))

    assert asyncio.run(main()) == [["a", "a"], ["b", "b"]]
    assert tracing.flush()
    spans = {s["span_id"]: s for s in sink.spans}
    for label in "ab":
        root = next(s for s in sink.spans if s["name"] == f"request-{label}")
        inner = [s for s in sink.spans if s["name"] == f"inner-{label}"]
        assert len(inner) == 2
        for span in inner:
            tool = spans[span["parent_id"]]
            assert tool["type"] == "tool" and tool["parent_id"] == root["span_id"]
            assert span["trace_id"] == tool["trace_id"] == root["trace_id"]


def test_threads_start_their_own_traces_unless_they_run_in_a_copied_context(sink):
    with tracing.span("query", "main") as root:
        plain = threading.Thread(target=lambda: tracing.span("span", "plain-thread").__enter__().end())
        copied = contextvars.copy_context()
        inherited = threading.Thread(target=lambda: copied.run(lambda: tracing.span("span", "copied").end()))
        plain.start(), inherited.start()
        plain.join(), inherited.join()
    assert tracing.flush()
    spans = by_name(sink.spans)
    assert spans["plain-thread"]["trace_id"] != root.trace and spans["plain-thread"]["parent_id"] is None
    assert spans["copied"]["trace_id"] == root.trace
    assert spans["copied"]["parent_id"] == spans["main"]["span_id"]


def test_async_decorator_records_the_exception(sink):
    @tracing.traced("llm", name="generate")
    async def generate():
        raise ValueError("model overloaded")

    with pytest.raises(ValueError, match="overloaded"):
        asyncio.run(generate())
    assert tracing.flush()
    (span,) = sink.spans
    assert span["name"] == "generate" and span["status"] == "error" and span["type"] == "llm"


def test_a_span_never_ended_is_closed_as_unfinished_at_shutdown():
    memory = MemorySink()
    tracer = tracing.configure([memory], interval=0.05)
    try:
        root = tracer.start_span("query", "never-ended")
        with tracing.span("retrieval"):
            pass
        assert tracer.flush()
        assert [s["name"] for s in memory.spans] == ["retrieval"]  # the open root is not written yet
        assert tracer.stats()["open"] == 1
        tracer.shutdown()
        spans = by_name(memory.spans)
        assert spans["never-ended"]["status"] == "unfinished" and spans["never-ended"]["end_ns"] > 0
        assert spans["retrieval"]["parent_id"] == spans["never-ended"]["span_id"]
        assert tracer.stats()["unfinished"] == 1 and memory.closed
        root.end()  # ending it later changes nothing
        assert len(memory.spans) == 2
    finally:
        tracing.configure()


def test_a_non_serialisable_attribute_is_stringified_with_a_marker(sink):
    class Opaque:
        def __str__(self):
            return "opaque-value"

    with tracing.span("tool", payload={"when": Opaque(), "n": float("nan")}, raw=b"\x00\x01"):
        pass
    assert tracing.flush()
    attributes = sink.spans[0]["attributes"]
    assert attributes["payload"]["when"].startswith(tracing.UNSERIALISABLE) and "opaque-value" in \
        attributes["payload"]["when"]
    assert attributes["payload"]["n"] == "nan"
    assert attributes["raw"].startswith(f"{tracing.UNSERIALISABLE} builtins.bytes")
    assert attributes["tether.unserialisable"] == ["payload.when", "raw"]


def test_a_10_mb_prompt_is_truncated_and_the_hash_of_the_full_text_kept():
    memory = MemorySink()
    tracing.configure([memory], interval=0.05, max_value_chars=1000)
    try:
        prompt = "context " * (10 * 1024 * 1024 // 8)
        with tracing.span("llm", prompt=prompt):
            pass
        assert tracing.flush(30)
        attributes = memory.spans[0]["attributes"]
        assert attributes["prompt"] == prompt[:1000] + tracing.TRUNCATED
        assert attributes["tether.truncated"] == {
            "prompt": {"chars": len(prompt), "sha256": hashlib.sha256(prompt.encode()).hexdigest()}}
    finally:
        tracing.configure()


class Failing:
    name = "down"

    def write(self, spans):
        raise ConnectionRefusedError("sink is down")

    def close(self):
        raise ConnectionRefusedError("still down")


def test_a_dead_sink_loses_its_spans_but_not_the_app_or_the_other_sinks(capsys):
    memory = MemorySink()
    tracer = tracing.configure([Failing(), memory], interval=0.05)
    try:
        for i in range(3):
            with tracing.span("query", f"q{i}"):
                pass
            assert tracer.flush()
        assert [s["name"] for s in memory.spans] == ["q0", "q1", "q2"]
        assert tracer.stats()["sink_errors"] == 3
        tracer.shutdown()
    finally:
        tracing.configure()
    err = capsys.readouterr().err
    assert err.count("trace sink failed;") == 1 and "ConnectionRefusedError" in err  # warned once
    assert "trace sink failed to close" in err


class Stalled:
    name = "stalled"

    def __init__(self):
        self.release, self.entered, self.spans = threading.Event(), threading.Event(), []

    def write(self, spans):
        self.entered.set()
        self.release.wait(30)
        self.spans.extend(spans)

    def close(self):
        pass


def test_a_stalled_sink_never_blocks_the_app_and_overflow_is_counted(capsys):
    stalled = Stalled()
    tracer = tracing.configure([stalled], max_queue=10, batch_size=1, interval=0.01)
    try:
        with tracing.span("query", "first"):
            pass
        assert stalled.entered.wait(10)  # the writer is now stuck in the sink
        for i in range(50):
            with tracing.span("query", f"q{i}"):
                pass
        stats = tracer.stats()
        assert stats["dropped"] == 40 and stats["queued"] == 10
        assert tracer.flush(timeout=0.2) is False  # gives up instead of blocking
        stalled.release.set()
        assert tracer.flush(timeout=10)
        assert len(stalled.spans) == 11
    finally:
        stalled.release.set()
        tracing.configure()
    assert capsys.readouterr().err.count("trace spans dropped") == 1


class Exploding:
    name = "exploding"

    def redact(self, text):
        raise RuntimeError("regex engine crashed")


def test_a_redactor_that_raises_masks_the_whole_span(capsys):
    memory = MemorySink()
    tracer = tracing.configure([memory], [Exploding()], interval=0.05)
    try:
        try:
            with tracing.span("llm", "call bob@example.com", prompt="my card 4111", input_tokens=7,
                              variables={"user": "bob@example.com"}):
                raise KeyError("bob@example.com")
        except KeyError:
            pass
        assert tracer.flush()
    finally:
        tracing.configure()
    (span,) = memory.spans
    assert span["name"] == tracing.MASK and span["error"] == {"type": tracing.MASK, "message": tracing.MASK}
    assert span["attributes"] == {"prompt": tracing.MASK, "input_tokens": 7, "variables": {"user": tracing.MASK},
                                  "tether.redaction_failed": True}
    assert tracer.stats()["redaction_failures"] == 1
    assert "trace redactor failed" in capsys.readouterr().err


def test_without_sinks_spans_still_nest_and_nothing_is_kept():
    tracer = tracing.configure()
    with tracing.span("query") as root, tracing.span("llm") as child:
        assert tracing.current_span() is child and child.parent_id == root.span_id
    assert tracer.stats()["captured"] == 0 and tracer.flush()


def test_tracer_limits_are_checked():
    with pytest.raises(ValueError, match="max_queue"):
        tracing.Tracer(max_queue=0)


def test_start_tracing_validates_every_key_before_starting(tmp_path):
    from tether.manager import PluginHost
    from tether.plugins.traces import start_tracing

    host = PluginHost(entry_points=False)
    cases = {
        "tracing: unknown key 'sink'": {"sink": []},
        "tracing.sinks[0].plugin: unknown trace_sink plugin 'jsonll'": {"sinks": [{"plugin": "jsonll"}]},
        "tracing.redactors[0].params.patterns[1]: invalid regular expression": {
            "redactors": [{"plugin": "regex", "params": {"patterns": ["ok", "(unclosed"]}}]},
        "tracing.max_queue: expected an integer >= 1": {"max_queue": 0},
        "tracing.sinks[0]: expected {plugin": {"sinks": ["store"]},
    }
    for message, config in cases.items():
        with pytest.raises((ConfigError, Exception)) as info:
            start_tracing(tmp_path, config, host=host)
        assert message in str(info.value), (message, str(info.value))
    assert not (tmp_path / "tether.db").exists()


def test_spans_are_flushed_and_open_ones_closed_at_interpreter_exit(tmp_path):
    import json
    import subprocess
    import sys

    script = f"""
from tether import tracing
from tether.plugins.traces import start_tracing
start_tracing({str(tmp_path)!r}, {{"sinks": [{{"plugin": "jsonl"}}], "interval": 60}})
with tracing.span("query", "done"):
    pass
tracing.get_tracer().start_span("query", "left-open")
"""  # interval 60 s: only the exit handler can have written them
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    spans = [json.loads(line) for f in (tmp_path / "traces").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert {(s["name"], s["status"]) for s in spans} == {("done", "ok"), ("left-open", "unfinished")}
    assert "stored as unfinished" in proc.stderr


def test_many_threads_at_once_lose_no_span_and_mix_no_trace(sink):
    def worker(n):
        for i in range(50):
            with tracing.span("query", f"w{n}-r{i}"):
                with tracing.span("retrieval", worker=n, request=i):
                    pass
                with tracing.span("llm", worker=n, request=i):
                    pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracing.flush(30)
    assert len(sink.spans) == 8 * 50 * 3
    roots = {s["span_id"]: s for s in sink.spans if s["parent_id"] is None}
    assert len(roots) == 400 and len({s["trace_id"] for s in sink.spans}) == 400
    for span in sink.spans:
        if span["parent_id"] is not None:
            root = roots[span["parent_id"]]
            assert root["trace_id"] == span["trace_id"]
            assert root["name"] == f"w{span['attributes']['worker']}-r{span['attributes']['request']}"


class ReturnsNone:
    def redact(self, text):
        return None


def test_a_redactor_returning_something_other_than_text_also_masks_the_span():
    memory = MemorySink()
    tracer = tracing.configure([memory], [ReturnsNone()], interval=0.05)
    try:
        with tracing.span("output", text="the answer", tokens=3):
            pass
        assert tracer.flush()
    finally:
        tracing.configure()
    (span,) = memory.spans
    assert span["attributes"] == {"text": tracing.MASK, "tokens": 3, "tether.redaction_failed": True}
