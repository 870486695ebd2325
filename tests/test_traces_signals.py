"""Signals from traces (the ``traces`` window), RAG evaluation, ``tether traces`` and the
RAG example run end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tether import tracing
from tether.errors import ConfigError, DataError
from tether.plugins.traces import configs, start_tracing
from tether.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rag"


@pytest.fixture(autouse=True)
def reset_tracer():
    yield
    tracing.configure()


def request(output: str, *, chunks=("d1#0",), scores=(0.7,), triggered=False, tool_error=False, corrected=None,
            fmt="json"):
    with tracing.span("query", "answer") as root:
        with tracing.span("retrieval", chunk_ids=list(chunks), scores=list(scores)):
            pass
        with tracing.span("llm", model="echo", input_tokens=100, output_tokens=20, cost=0.002):
            pass
        with tracing.span("llm", model="echo", input_tokens=10, output_tokens=5, cost=0.001):
            pass
        with tracing.span("guardrail", triggered=triggered):
            pass
        try:
            with tracing.span("tool", tool="fare"):
                if tool_error:
                    raise TimeoutError("fare service timed out")
        except TimeoutError:
            pass
        if corrected is not None:
            with tracing.span("approval", corrected=corrected):
                pass
        with tracing.span("output", text=output, format=fmt):
            pass
    return root.trace


def test_each_request_becomes_one_row_of_signals(tmp_path, host):
    from tether.plugins.traces.signals import COLUMNS, TracesWindow

    (tmp_path / "schema.json").write_text(json.dumps({"type": "object", "required": ["answer"]}))
    tracer = start_tracing(tmp_path, host=host)
    ok = request('{"answer": "9 euros"}', corrected=False)
    bad = request('{"reply": "9 euros"}', triggered=True, tool_error=True, corrected=True)
    refused = request('{"answer": "I do not have information about that."}', chunks=(), scores=())
    broken = request("not json at all")
    assert tracer.shutdown()
    with Workspace.open(host, tmp_path) as ws:
        from tether.context import RunContext

        window = TracesWindow(json_schema=str(tmp_path / "schema.json"))
        batches = list(window.batches(context=RunContext(host=host, workspace=ws)))
    rows = {r["started_at"]: r for b in batches for r in b.to_pylist()}
    assert list(batches[0].schema.names) == list(COLUMNS)
    ordered = [rows[k] for k in sorted(rows)]
    assert [r["invalid_format"] for r in ordered] == [0.0, 1.0, 0.0, 1.0]
    assert [r["refused"] for r in ordered] == [0.0, 0.0, 1.0, 0.0]
    assert [r["empty_retrieval"] for r in ordered] == [0.0, 0.0, 1.0, 0.0]
    assert [r["retrieval_top_score"] for r in ordered] == [0.7, 0.7, None, 0.7]
    assert [r["guardrail_triggered"] for r in ordered] == [0.0, 1.0, 0.0, 0.0]
    assert [r["tool_failed"] for r in ordered] == [0.0, 1.0, 0.0, 0.0]
    assert [r["human_corrected"] for r in ordered] == [0.0, 1.0, None, None]
    first = ordered[0]
    assert (first["tokens_in"], first["tokens_out"], first["llm_calls"], first["tool_calls"]) == (110, 25, 2, 1)
    assert first["cost"] == pytest.approx(0.003)
    assert first["latency_ms"] >= first["latency_llm_ms"] > 0 and first["name"] == "answer"
    assert {ok, bad, refused, broken}  # four distinct traces were written
    assert window.time_column_of(context=None) == "started_at"


def test_the_window_reads_jsonl_files_and_checks_its_params(tmp_path, host):
    from tether.plugins.traces.signals import TracesWindow

    tracer = start_tracing(tmp_path, {"sinks": [{"plugin": "jsonl"}]}, host=host)
    request('{"answer": "x"}')
    tracer.shutdown()
    window = host.backends.create("window", "traces", {"path": str(tmp_path / "traces")}, where="w")
    (row,) = [r for b in window.batches(context=None) for r in b.to_pylist()]
    assert row["refused"] == 0.0 and row["invalid_format"] == 0.0  # format: json, parsed fine, no schema
    with pytest.raises(ConfigError, match=r"w.params.refusal_patterns\[0\]: invalid regular expression"):
        host.backends.create("window", "traces", {"refusal_patterns": ["(oops"]}, where="w")
    (tmp_path / "bad.json").write_text('{"type": 12}')
    with pytest.raises(DataError, match="not a valid JSON Schema"):
        list(TracesWindow(path=str(tmp_path / "traces"), json_schema=str(tmp_path / "bad.json")).batches(context=None))
    with pytest.raises(DataError, match="no trace file or folder"):
        list(TracesWindow(path=str(tmp_path / "missing")).batches(context=None))


def rubric_ok(question, answer, chunks):
    return answer.startswith("A:")


def rubric_half(question, answer, chunks):
    return 0.5


def rubric_crash(question, answer, chunks):
    raise RuntimeError("rubric bug")


def rubric_bad(question, answer, chunks):
    return "yes"


def test_rag_evaluation_scores_retrieval_and_answers_and_links_its_inputs(tmp_path, host):
    from tether.plugins.traces.rag_eval import evaluate_rag

    ranked = {"q1": ["d1", "d2"], "q2": ["d9", "d3"], "q3": ["d8", "d7"]}
    with Workspace.open(host, tmp_path) as ws:
        qset = configs.save(ws.store, configs.QuestionSet.build(name="qs", questions=[
            {"id": "a", "question": "q1", "relevant": ["d1"]}, {"id": "b", "question": "q2", "relevant": ["d3"]},
            {"id": "c", "question": "q3", "relevant": ["d5"]}]))
        prompt = configs.save(ws.store, configs.PromptTemplate.build(name="p", template="{question}"))
        me = sys.modules[__name__].__name__
        evaluation = evaluate_rag(ws.store, qset, lambda q: {"answer": f"A: {q}", "chunks": ranked[q]}, k=2,
                                  rubrics=[f"{me}:rubric_ok", f"{me}:rubric_half", f"{me}:rubric_crash"],
                                  configs=[prompt])
        assert evaluation.metrics["hit_rate@2"] == pytest.approx(2 / 3)
        assert evaluation.metrics["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
        assert 0 < evaluation.metrics["ndcg@2"] < 1
        assert evaluation.metrics["rubric.rubric_ok"] == 1.0 and evaluation.metrics["rubric.rubric_half"] == 0.5
        assert evaluation.metrics["rubric.rubric_crash"] == 0.0
        assert len(evaluation.findings) == 3 and "rubric bug" in evaluation.findings[0].message
        assert evaluation.task == "ranking" and evaluation.examples["questions"][1]["chunks"] == ["d9", "d3"]
        upstream = {(e["parent"], e["relation"]) for e in ws.store.lineage(evaluation.id)["upstream"]}
        assert upstream == {(qset.id, "questions"), (prompt.id, "prompt_template")}
        with pytest.raises(ConfigError, match="rubrics\\[0\\]: cannot import 'nowhere'"):
            evaluate_rag(ws.store, qset, lambda q: {}, rubrics=["nowhere:f"])
        odd = evaluate_rag(ws.store, qset, lambda q: {"answer": "", "chunks": []}, rubrics=[f"{me}:rubric_bad"])
        assert odd.metrics["rubric.rubric_bad"] == 0.0 and "returns a bool or a score" in odd.findings[0].message
        assert odd.metrics["hit_rate@5"] == 0.0  # nothing retrieved (default k = 5): a miss, still defined


def test_traces_commands_list_show_and_export(tmp_path, host, tether_cli):
    with OtlpCheck(), Workspace.open(host, tmp_path / "ws") as ws:
        prompt = configs.save(ws.store, configs.PromptTemplate.build(name="p", template="{question}"))
    tracer = start_tracing(tmp_path / "ws", host=host)
    with tracing.span("query", "answer"):
        with tracing.span("prompt", template_id=prompt.id):
            pass
        with tracing.span("llm", provider="local", model="echo", input_tokens=4, output_tokens=2):
            pass
    tracer.shutdown()
    listed = tether_cli("traces", "ls", "-w", tmp_path / "ws", "--json")
    assert listed.exit_code == 0, listed
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "answer" and row["spans"] == 3 and row["tokens_in"] == 4.0
    assert row["config_ids"] == [prompt.id] and row["models"] == ["local/echo"]
    assert json.loads(tether_cli("traces", "ls", "--name", "other", "-w", tmp_path / "ws", "--json").stdout) == []
    human = tether_cli("traces", "ls", "-w", tmp_path / "ws")
    assert human.exit_code == 0 and row["id"] in human.stdout and "tokens in/out" in human.stdout
    shown = tether_cli("traces", "show", row["id"][:14], "-w", tmp_path / "ws")
    assert shown.exit_code == 0, shown
    assert f"configs: {prompt.id}" in shown.stdout and "  prompt" in shown.stdout and "  echo" not in shown.stdout
    as_json = json.loads(tether_cli("traces", "show", row["id"], "-w", tmp_path / "ws", "--json").stdout)
    assert as_json["kind"] == "trace" and len(as_json["data"]["spans"]) == 3
    out = tmp_path / "spans.jsonl"
    exported = tether_cli("traces", "export", "-o", out, "-w", tmp_path / "ws", "--json")
    assert json.loads(exported.stdout) == {"out": str(out), "format": "jsonl", "traces": 1, "spans": 3}
    assert len(out.read_text().splitlines()) == 3
    otlp = tmp_path / "otlp.json"
    assert tether_cli("traces", "export", "--format", "otlp-json", "-o", otlp, "-w", tmp_path / "ws").exit_code == 0
    spans = json.loads(otlp.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert {s["traceId"] for s in spans} == {row["id"][6:]} and len(spans) == 3
    llm = next(s for s in spans if s["name"] == "chat echo")
    assert {"key": "gen_ai.request.model", "value": {"stringValue": "echo"}} in llm["attributes"]
    signals = tether_cli("traces", "signals", "-o", tmp_path / "signals.csv", "-w", tmp_path / "ws")
    assert signals.exit_code == 0 and signals.stdout.strip() == f"wrote 1 rows of signals to {tmp_path / 'signals.csv'}"
    header, row_line = (tmp_path / "signals.csv").read_text().splitlines()
    assert header.startswith('"started_at","name","error"') and ',"answer",0,' in row_line
    wrong = tether_cli("traces", "signals", "-o", tmp_path / "signals.txt", "-w", tmp_path / "ws")
    assert wrong.exit_code == 2 and "expected a .parquet or .csv file" in wrong.stderr
    from_files = tether_cli("traces", "ls", "--path", tmp_path / "nowhere")
    assert from_files.exit_code == 2 and from_files.stderr.startswith("tether: error: no trace file or folder")
    missing = tether_cli("traces", "show", "trace-ffff", "-w", tmp_path / "ws")
    assert missing.exit_code == 2 and "no trace 'trace-ffff'" in missing.stderr


class OtlpCheck:
    """The OTLP JSON export needs the rag extra; the test environment installs it."""

    def __enter__(self):
        pytest.importorskip("opentelemetry.sdk")
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_the_rag_example_runs_end_to_end(tmp_path, tether_cli):
    import subprocess

    proc = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), "--dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    metrics = summary["evaluation"]["metrics"]
    assert metrics["hit_rate@3"] == 1.0 and metrics["mrr"] > 0.8 and metrics["rubric.not_a_refusal"] == 1.0
    assert summary["monitor"]["verdict"] == "critical"
    assert {"refusals-changed", "empty-retrieval-changed"} <= set(summary["monitor"]["alerts"])
    assert {"refused", "empty_retrieval"} <= set(summary["monitor"]["drifted"])
    listed = json.loads(tether_cli("traces", "ls", "-w", tmp_path / ".tether", "--limit", "500", "--json").stdout)
    assert len(listed) == 2 * 4 * 20  # two weeks, four rounds of 16 labelled + 4 off-topic questions
    newest = listed[0]
    assert summary["retrieval_week2"] in newest["config_ids"] and summary["configs"]["prompt"] in newest["config_ids"]
    lineage = tether_cli("lineage", newest["id"], "-w", tmp_path / ".tether")
    assert lineage.exit_code == 0 and summary["retrieval_week2"] in lineage.stdout
    assert summary["configs"]["prompt"] in lineage.stdout
    assert f"snapshot {summary['index_snapshot']} (as index)" in lineage.stdout  # the data the index was built from
    # the same signals as files, monitored by the `tether monitor` command
    for week in ("week1", "week2"):
        wrote = tether_cli("traces", "signals", "--path", tmp_path / ".tether" / "traces" / week,
                           "-o", tmp_path / f"{week}.parquet", "--json")
        assert json.loads(wrote.stdout) == {"out": str(tmp_path / f"{week}.parquet"), "rows": 80}
    (tmp_path / "mon.yaml").write_text(
        "columns: [refused, empty_retrieval, retrieval_top_score]\n"
        "alerts: {rules: [{name: refusals-changed, signal: drift.column.refused, above: 1, severity: critical}]}\n")
    monitored = tether_cli("monitor", tmp_path / "week2.parquet", "--reference", tmp_path / "week1.parquet",
                           "--config", tmp_path / "mon.yaml", "--time-column", "started_at", "--json",
                           "-w", tmp_path / ".tether")
    assert monitored.exit_code == 1, monitored  # the critical alert fails the command (--fail-on critical)
    report = json.loads(monitored.stdout)
    assert [a["rule"] for a in report["data"]["alerts"]] == ["refusals-changed"]
