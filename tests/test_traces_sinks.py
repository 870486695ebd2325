"""Trace sinks (store on SQLite and PostgreSQL, JSONL, OTLP to a real receiver), redaction
before any of them, versioned config records and the lineage from a trace to them."""

from __future__ import annotations

import contextvars
import json
import uuid
from typing import ClassVar

import attrs
import pytest
from conftest import require_server
from tether import hookimpl, tracing
from tether.backends import Redactor, TraceSink
from tether.errors import ConfigError
from tether.plugins.traces import configs, start_tracing
from tether.plugins.traces.read import find_trace
from tether.workspace import Workspace
from traces_helpers import OtlpReceiver

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def reset_tracer():
    yield
    tracing.configure()


def save_configs(ws):
    prompt = configs.save(ws.store, configs.PromptTemplate.build(
        name="answer", template="Context:\n{context}\nQuestion: {question}", model={"model": "echo"}))
    retrieval = configs.save(ws.store, configs.RetrievalConfig.build(
        name="docs", embedding_model="tfidf", embedding_model_version="sklearn-1.5", index_snapshot="idx-2026-01",
        top_k=3, chunking={"size": 400, "overlap": 40}))
    tool = configs.save(ws.store, configs.ToolDefinition.build(
        name="calculator", description="adds", parameters={"type": "object"}))
    guard = configs.save(ws.store, configs.GuardrailConfig.build(name="safety", checks={"pii": {"action": "block"}}))
    return prompt, retrieval, tool, guard


def one_request(prompt, retrieval, tool, guard, *, secret_text: str = "", fail_tool: bool = False):
    """A traced RAG request touching every span type."""
    s = secret_text
    with tracing.span("query", f"ask {s}", text=f"question {s}", user=s) as root:
        with tracing.span("retrieval", query=f"q {s}", config_id=retrieval.id, index_snapshot="idx-2026-01",
                          embedding_model="tfidf", embedding_model_version="sklearn-1.5", top_k=3) as r:
            r.set(chunk_ids=["doc-1#0", "doc-2#0"], scores=[0.8, 0.3])
        rendered = prompt.render(context=f"ctx {s}", question=f"question {s}")
        with tracing.span("prompt", template_id=prompt.id, template_version=prompt.version,
                          variables={"question": f"question {s}"}, rendered_hash=tracing.text_hash(rendered)):
            pass
        with tracing.span("guardrail", config_id=guard.id, check="pii", triggered=False, note=s):
            pass
        try:
            with tracing.span("tool", tool="calculator", config_id=tool.id, input={"expr": f"1+1 {s}"},
                              retries=1) as t:
                if fail_tool:
                    raise RuntimeError(f"tool failed for {s}")
                t.set(output={"value": 2, "echo": s})
        except RuntimeError:
            pass
        with tracing.span("llm", provider="local", model="echo", model_version="1.0",
                          settings={"temperature": 0.0, "max_tokens": 64}, input_tokens=30, output_tokens=12,
                          cost=0.0004, prompt=rendered, completion=f"answer {s}"):
            pass
        with tracing.span("approval", approver=s, approved=True, corrected=False, comment=f"ok {s}"):
            pass
        with tracing.span("output", text=f"answer {s}", format="text"):
            pass
    return root.trace


def test_the_store_sink_writes_one_trace_record_linked_to_its_configs(tmp_path, host, tether_cli):
    with Workspace.open(host, tmp_path / "ws") as ws:
        prompt, retrieval, tool, guard = save_configs(ws)
    tracer = start_tracing(tmp_path / "ws", host=host)
    trace_id = one_request(prompt, retrieval, tool, guard)
    tracer.shutdown()
    with Workspace.open(host, tmp_path / "ws") as ws:
        stored = ws.store.get(trace_id, kind="trace")
        assert stored.spans == () and stored.span_count == 8  # the spans are rows of trace_spans
        assert ws.store.sql_query("SELECT COUNT(*) FROM {trace_spans} WHERE trace_id = ?", [trace_id]) == [(8,)]
        rec = find_trace(ws.store, trace_id[:16])
        assert rec.complete and rec.status == "ok" and len(rec.spans) == 8
        assert rec.models == ("local/echo@1.0",)
        assert set(rec.config_ids) == {prompt.id, retrieval.id, tool.id, guard.id, "idx-2026-01"}
        upstream = {(e["parent"], e["relation"]) for e in ws.store.lineage(trace_id)["upstream"]}
        assert upstream == {(prompt.id, "prompt"), (retrieval.id, "retrieval"), (tool.id, "tool"),
                            (guard.id, "guardrail")}  # the index is not a record here: no edge
    shown = tether_cli("lineage", prompt.id, "-w", tmp_path / "ws")
    assert shown.exit_code == 0 and trace_id in shown.stdout


def test_the_store_sink_writes_to_postgresql(tmp_path, host):
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    schema = f"traces_{uuid.uuid4().hex[:10]}"
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "workspace.json").write_text(json.dumps(
        {"storage": {"plugin": "local"}, "store": {"plugin": "postgres", "params": {"dsn": PG_DSN, "schema": schema}}}))
    try:
        with Workspace.open(host, tmp_path / "ws") as ws:
            prompt, retrieval, tool, guard = save_configs(ws)
        tracer = start_tracing(tmp_path / "ws", host=host)
        trace_id = one_request(prompt, retrieval, tool, guard, fail_tool=True)
        assert tracer.shutdown()
        with Workspace.open(host, tmp_path / "ws") as ws:
            rec = find_trace(ws.store, trace_id)
            assert rec.status == "error" and len(rec.spans) == 8
            assert {e["parent"] for e in ws.store.lineage(trace_id)["upstream"]} == {
                prompt.id, retrieval.id, tool.id, guard.id}
        assert not (tmp_path / "ws" / "tether.db").exists()
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_span_arriving_after_its_trace_was_written_is_merged(tmp_path, host):
    tracer = start_tracing(tmp_path, {"batch_size": 1}, host=host)
    with tracing.span("query", "root") as root:
        late = tracer.start_span("tool", "background")  # outlives its parent
    assert tracing.current_span() is None  # leaving the root leaves everything opened inside it
    tracer.flush()
    late.end()
    assert tracing.current_span() is None  # ending it later does not bring the root back
    tracer.shutdown()
    with Workspace.open(host, tmp_path) as ws:
        rec = find_trace(ws.store, root.trace)
    assert sorted(s["name"] for s in rec.spans) == ["background", "root"] and rec.span_count == 2


def test_the_jsonl_sink_appends_whole_lines_and_the_reader_skips_a_torn_one(tmp_path, host):
    from tether.plugins.traces.jsonl import read_spans

    tracer = start_tracing(tmp_path, {"sinks": [{"plugin": "jsonl", "params": {"path": str(tmp_path / "t")}}]},
                           host=host)
    with tracing.span("query", "a"), tracing.span("llm", "b", input_tokens=3):
        pass
    tracer.shutdown()
    (file,) = (tmp_path / "t").glob("spans-*.jsonl")
    with open(file, "a") as handle:
        handle.write('{"trace_id": "trace-1", "span_')  # a write cut short
    spans = list(read_spans(tmp_path / "t"))
    assert [s["name"] for s in spans] == ["b", "a"] and spans[0]["attributes"] == {"input_tokens": 3}


def test_the_otlp_sink_sends_gen_ai_and_openinference_attributes(tmp_path, host):
    with OtlpReceiver() as receiver:
        with Workspace.open(host, tmp_path) as ws:
            prompt, retrieval, tool, guard = save_configs(ws)
        tracer = start_tracing(tmp_path, {"sinks": [{"plugin": "otlp", "params": {
            "endpoint": receiver.endpoint, "service_name": "rag-demo"}}]}, host=host)
        trace_id = one_request(prompt, retrieval, tool, guard, fail_tool=True)
        assert tracer.shutdown()
    spans = {s["attributes"]["tether.span.type"]: s for s in receiver.spans}
    assert len(receiver.spans) == 8 and {s["trace_id"] for s in receiver.spans} == {trace_id[6:]}
    assert spans["query"]["resource"]["service.name"] == {"stringValue": "rag-demo"}
    llm = spans["llm"]
    assert llm["name"] == "chat echo" and llm["kind"] == 3  # SPAN_KIND_CLIENT
    assert {k: llm["attributes"][k] for k in ("gen_ai.operation.name", "gen_ai.provider.name",
                                               "gen_ai.request.model", "gen_ai.response.model",
                                               "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                               "gen_ai.request.temperature", "gen_ai.request.max_tokens",
                                               "openinference.span.kind")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "local", "gen_ai.request.model": "echo",
        "gen_ai.response.model": "1.0", "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 12,
        "gen_ai.request.temperature": 0.0, "gen_ai.request.max_tokens": 64, "openinference.span.kind": "LLM"}
    retrieval_span = spans["retrieval"]["attributes"]
    assert retrieval_span["openinference.span.kind"] == "RETRIEVER"
    assert retrieval_span["retrieval.documents.0.document.id"] == "doc-1#0"
    assert retrieval_span["retrieval.documents.1.document.score"] == 0.3
    assert retrieval_span["gen_ai.data_source.id"] == "idx-2026-01"
    tool_span = spans["tool"]
    assert tool_span["name"] == "execute_tool calculator" and tool_span["status"] == 2  # STATUS_CODE_ERROR
    assert tool_span["attributes"]["gen_ai.tool.name"] == "calculator"
    assert tool_span["attributes"]["error.type"] == "RuntimeError"
    assert tool_span["events"][0]["name"] == "exception"
    assert spans["guardrail"]["attributes"]["openinference.span.kind"] == "GUARDRAIL"
    assert spans["prompt"]["attributes"]["tether.template_id"] == prompt.id
    by_id = {s["span_id"]: s for s in receiver.spans}
    assert by_id[llm["parent_id"]]["attributes"]["tether.span.type"] == "query"


SECRETS = ["alice.smith@example.com", "+1 (415) 555-0132", "sk-proj-Abc123Def456Ghi789Jkl0",
           "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "AKIAIOSFODNN7EXAMPLE", "Bearer eyJhbGciOi.J9x2Kq8PzLw",
           "xQ7vN2pL9kR4tY8wZ3mB6cF1hJ5gD0sA", "CUST-004211"]


def test_planted_secrets_reach_no_sink(tmp_path, host):
    planted = " ".join(SECRETS)
    with OtlpReceiver() as receiver:
        with Workspace.open(host, tmp_path) as ws:
            prompt, retrieval, tool, guard = save_configs(ws)
        tracer = start_tracing(tmp_path, {
            "sinks": [{"plugin": "store"}, {"plugin": "jsonl"}, {"plugin": "otlp", "params": {
                "endpoint": receiver.endpoint}}],
            "redactors": [{"plugin": "pii"}, {"plugin": "secrets"},
                          {"plugin": "regex", "params": {"patterns": ["CUST-[0-9]{6}"]}}]}, host=host)
        one_request(prompt, retrieval, tool, guard, secret_text=planted, fail_tool=True)
        assert tracer.shutdown()
        otlp_text = json.dumps(receiver.spans)
    assert len(receiver.spans) == 8
    jsonl_text = "".join(p.read_text() for p in (tmp_path / "traces").glob("*.jsonl"))
    store_text = (tmp_path / "tether.db").read_bytes().decode("utf-8", "replace")
    for where, text in {"otlp": otlp_text, "jsonl": jsonl_text, "store": store_text}.items():
        assert "[EMAIL]" in text and "[SECRET]" in text and "[REDACTED]" in text, where
        for secret in SECRETS + ["555-0132", "Abc123Def456", "IOSFODNN7"]:
            assert secret not in text, (where, secret)


def test_config_records_are_content_addressed_and_versioned_per_name(tmp_path, host):
    with Workspace.open(host, tmp_path) as ws:
        v1 = configs.save(ws.store, configs.PromptTemplate.build(name="answer", template="A {question}"))
        again = configs.save(ws.store, configs.PromptTemplate.build(name="answer", template="A {question}"))
        v2 = configs.save(ws.store, configs.PromptTemplate.build(name="answer", template="B {question}"))
        back = configs.save(ws.store, configs.PromptTemplate.build(name="answer", template="A {question}"))
        assert (v1.version, again.id, v2.version, back.id) == (1, v1.id, 2, v1.id)
        assert v1.id.startswith("prompt-") and v1.id != v2.id
        assert [r.version for r in ws.store.find("prompt_template", name="answer")] == [2, 1]
        assert v2.render(question="why?") == "B why?" and v2.variables == ("question",)
        with pytest.raises(ConfigError, match=r"missing variables \['question'\], unknown variables \['q'\]"):
            v2.render(q="why?")


@pytest.mark.parametrize(("build", "message"), [
    (lambda: configs.PromptTemplate.build(name="bad/name", template="x"), "prompt_template.name"),
    (lambda: configs.PromptTemplate.build(name="p", template="{0} {}"), "placeholders must be plain names"),
    (lambda: configs.RetrievalConfig.build(name="r", embedding_model="m", top_k=0), "must be an integer >= 1"),
    (lambda: configs.RetrievalConfig.build(name="r", embedding_model="m", filters=[1]), "expected a mapping"),
    (lambda: configs.QuestionSet.build(name="q", questions=[{"question": "x", "relevant": "d1"}]),
     "expected a list of chunk ids"),
    (lambda: configs.QuestionSet.build(name="q", questions=[]), "non-empty list"),
    (lambda: configs.ToolDefinition.build(name="t", paramters={}), "tool_definition: unknown field 'paramters'"),
    (lambda: configs.RetrievalConfig.build(name="r"), "missing required field 'embedding_model'"),
])
def test_bad_config_records_are_refused(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_trace_whose_root_never_arrives_is_written_incomplete_at_close(tmp_path, host):
    tracer = start_tracing(tmp_path, {"batch_size": 1}, host=host)

    def lost_request():
        root = tracer.start_span("query", "stuck")
        with tracing.span("retrieval", top_k=1):
            pass
        tracer._open.pop(root.span_id)  # as if the span object was lost: never ended, never closed
        return root

    root = contextvars.Context().run(lost_request)
    assert tracer.flush()
    tracer.shutdown()
    with Workspace.open(host, tmp_path) as ws:
        rec = find_trace(ws.store, root.trace)
    assert rec.complete is False and [s["type"] for s in rec.spans] == ["retrieval"]


class DictStore:
    """A metadata store without SQL tables: the store sink keeps spans in the record."""

    def __init__(self):
        self.records, self.edges = {}, []

    def put(self, record, *, parents=(), run_id=None, replace=False):
        if replace or record.id not in self.records:
            self.records[record.id] = record
        self.edges += [(p, record.id, r) for p, r in parents]

    def get(self, record_id, kind=None):
        rec = self.records.get(record_id)
        return rec if rec is not None and kind in (None, rec.kind) else None


def test_on_a_store_without_sql_tables_the_spans_live_in_the_record(tmp_path, host):
    from tether.plugins.traces.store_sink import StoreSink

    with Workspace.open(host, tmp_path) as ws:
        prompt = configs.save(ws.store, configs.PromptTemplate.build(name="p", template="{q}"))
    store = DictStore()
    store.records[prompt.id] = prompt
    sink = StoreSink(workspace=str(tmp_path), max_pending_traces=1)
    sink._store = lambda: store
    memory = tracing.configure([sink], batch_size=1, interval=0.01)
    with tracing.span("query", "a") as a:
        with tracing.span("prompt", template_id=prompt.id):
            pass
    with tracing.span("query", "b") as b:
        pass

    def open_trace(name):
        root = memory.start_span("query", name)
        tracing.span("tool", f"child-of-{name}").end()
        return root

    orphan = contextvars.Context().run(open_trace, "c")
    contextvars.Context().run(open_trace, "d")  # over max_pending_traces: the oldest open trace is written
    assert memory.flush(30)
    assert store.records[a.trace].span_count == 2 and len(store.records[a.trace].spans) == 2
    assert (prompt.id, a.trace, "prompt") in store.edges and b.trace in store.records
    assert store.records[orphan.trace].complete is False
    memory.shutdown()
    assert store.records[orphan.trace].complete is True and len(store.records[orphan.trace].spans) == 2


def test_third_party_sinks_and_redactors_stand_in_through_the_backend_registry(tmp_path, host):
    """A plugin's own TraceSink and Redactor subclasses are built from a tracing config and
    called through their contract only."""
    seen: list[dict] = []

    @attrs.define(kw_only=True)
    class ListSink(TraceSink):
        name: ClassVar[str] = "list"
        label: str = "x"

        def write(self, spans):
            seen.extend(spans)

    @attrs.frozen(kw_only=True)
    class Upper(Redactor):
        name: ClassVar[str] = "upper"

        def redact(self, text):
            return text.upper()

    class Plugin:
        @hookimpl
        def tether_add_backends(self, backends):
            backends.add(ListSink)
            backends.add(Upper)

    host.register(Plugin(), name="third-party-traces")
    tracer = start_tracing(tmp_path, {"sinks": [{"plugin": "list", "params": {"label": "y"}}],
                                      "redactors": [{"plugin": "upper"}]}, host=host)
    with tracing.span("tool", "lookup", tool="search"):
        pass
    assert tracer.shutdown()
    assert [(s["name"], s["attributes"]) for s in seen] == [("LOOKUP", {"tool": "SEARCH"})]


def test_an_otlp_endpoint_that_is_down_loses_spans_but_not_the_store(tmp_path, host, capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tracer = start_tracing(tmp_path, {"sinks": [
        {"plugin": "otlp", "params": {"endpoint": f"http://127.0.0.1:{port}/v1/traces", "timeout": 1.0}},
        {"plugin": "store"}]}, host=host)
    for i in range(20):
        with tracing.span("query", f"q{i}"), tracing.span("llm", model="echo"):
            pass
    assert tracer.flush(30)
    assert tracer.stats()["sink_errors"] == 40 and tracer.stats()["written"] == 40
    tracer.shutdown()
    with Workspace.open(host, tmp_path) as ws:
        assert len(ws.store.find("trace")) == 20
    assert "OTLP export to http://127.0.0.1" in capsys.readouterr().err


def test_sink_parameters_are_checked(host, tmp_path):
    with pytest.raises(ConfigError, match=r"tracing.sinks\[0\].params.endpoint: expected an http\(s\) URL"):
        start_tracing(tmp_path, {"sinks": [{"plugin": "otlp", "params": {"endpoint": "127.0.0.1:4318"}}]}, host=host)
    with pytest.raises(ConfigError, match=r"tracing.sinks\[0\].params: unknown parameter 'folder'"):
        start_tracing(tmp_path, {"sinks": [{"plugin": "jsonl", "params": {"folder": "x"}}]}, host=host)
    (tmp_path / "afile").write_text("")
    from tether.errors import DataError

    with pytest.raises(DataError, match="is a file"):
        start_tracing(tmp_path, {"sinks": [{"plugin": "jsonl", "params": {"path": str(tmp_path / "afile")}}]},
                      host=host)


def test_the_secrets_redactor_keeps_digests_and_record_ids():
    from tether.plugins.traces.redaction import SecretsRedactor

    kept = ("retrieval-d98cab5861ba4bdb snap-437e3c5327ee60fb4912a380 trace-" + "ab12" * 8 +
            " sha256:" + "9f" * 32 + " 123e4567-e89b-12d3-a456-426614174000 doc-07#2")
    assert SecretsRedactor().redact(kept) == kept
    assert SecretsRedactor().redact("key xQ7vN2pL9kR4tY8wZ3mB6cF1hJ5gD0sA") == "key [SECRET]"
    assert SecretsRedactor(high_entropy=False).redact("key xQ7vN2pL9kR4tY8wZ3mB6cF1hJ5gD0sA").endswith("0sA")
