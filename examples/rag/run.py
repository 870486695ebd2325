"""The RAG example end to end: configs, traced traffic, evaluation, monitoring.

    python examples/rag/run.py [--dir FOLDER]

1. Snapshots the document chunks the index is built from (index.yaml, a tether snapshot)
   and saves the app's configuration as versioned records: the prompt template, the
   retrieval settings (naming that snapshot as the index), the fare tool, the guardrail
   and the labelled question set (questions.yaml).
2. Week 1: serves the questions (and a few off-topic ones) with tracing on (store sink,
   plus JSONL files under .tether/traces/week1), then evaluates retrieval (hit rate@3,
   MRR, nDCG@3) and the answers (rubrics.py) on the question set.
3. Week 2: a stricter retrieval setting goes live (a new version of the retrieval
   config), and traffic is traced again (.tether/traces/week2).
4. Stores week 1's signals as the reference profile and runs monitor.yaml, whose monitor
   reads week 2 through the ``traces`` window; the alert rules fire on the refusal and
   empty-retrieval drift. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OFF_TOPIC = ["What is the capital of Australia?", "Write me a poem about the sea.",
             "Who won the football match yesterday?", "How do I bake sourdough bread?"]


def snapshot_index(folder: Path, host):
    """Run index.yaml: the chunk table as a snapshot; the snapshot record."""
    from tether.config import load_chain
    from tether.runner import run_chain

    _, outputs = run_chain(load_chain(folder / "index.yaml", host), host)
    return next(r for r in outputs.values() if getattr(r, "kind", "") == "snapshot")


def save_configs(store, sklearn_version: str, index_snapshot: str) -> dict:
    from tether.documents import read_yaml_file
    from tether.plugins.traces import configs

    return {
        "prompt": configs.save(store, configs.PromptTemplate.build(
            name="pedal-answer", template="Answer from the handbook only.\nContext:\n{context}\nQuestion: {question}",
            model={"model": "template-filler", "settings": {"temperature": 0.0, "max_tokens": 128}})),
        "retrieval": configs.save(store, configs.RetrievalConfig.build(
            name="pedal-docs", embedding_model="tfidf", embedding_model_version=f"sklearn-{sklearn_version}",
            index_snapshot=index_snapshot, top_k=3, chunking={"strategy": "paragraph"},
            filters={"min_score": 0.1})),
        "tool": configs.save(store, configs.ToolDefinition.build(
            name="fare", description="overtime fee of a ride",
            parameters={"type": "object", "properties": {"minutes": {"type": "integer"}}})),
        "guardrail": configs.save(store, configs.GuardrailConfig.build(
            name="pedal-guard", checks={"banned_words": {"words": ["guarantee"], "action": "refuse"}})),
        "questions": configs.save(store, configs.QuestionSet.build(
            name="pedal-questions", questions=read_yaml_file(HERE / "questions.yaml", "question set"))),
    }


def serve(workspace: Path, week: str, assistant, questions: list[str], rounds: int, host) -> None:
    from tether.plugins.traces import start_tracing

    tracer = start_tracing(workspace, {"sinks": [{"plugin": "store"}, {"plugin": "jsonl", "params": {
        "path": str(workspace / "traces" / week)}}]}, host=host)
    for _ in range(rounds):
        for question in questions:
            assistant.ask(question)
    if not tracer.shutdown(timeout=30):
        raise SystemExit(f"tracing: spans still queued after 30 s: {tracer.stats()}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(HERE), help="folder for .tether/ and the monitor chain")
    folder = Path(parser.parse_args(argv).dir).resolve()
    sys.path.insert(0, str(HERE))
    import sklearn
    from pedal_rag import Assistant, Index
    from tether.config import load_chain
    from tether.manager import PluginHost
    from tether.plugins.monitoring.profile_store import save_profile
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.traces import configs
    from tether.plugins.traces.rag_eval import evaluate_rag
    from tether.plugins.traces.signals import TracesWindow
    from tether.runner import run_chain
    from tether.workspace import Workspace

    host, workspace = PluginHost(), folder / ".tether"
    for name in ("index.yaml", "monitor.yaml", "answer.schema.json"):
        if folder != HERE:
            shutil.copy(HERE / name, folder / name)
    snapshot = snapshot_index(folder, host)
    with Workspace.open(host, workspace) as ws:
        c = save_configs(ws.store, sklearn.__version__, snapshot.id)
        index = Index(ws.read_snapshot(snapshot).to_dict("records"))  # built from the snapshot, verified
    questions = [q["question"] for q in c["questions"].questions] + OFF_TOPIC
    week1 = Assistant(index, c["prompt"], c["retrieval"], c["tool"], c["guardrail"], min_score=0.1)
    serve(workspace, "week1", week1, questions, rounds=4, host=host)
    with Workspace.open(host, workspace) as ws:
        evaluation = evaluate_rag(ws.store, c["questions"], week1.ask, k=3,
                                  rubrics=["rubrics:not_a_refusal", "rubrics:grounded_in_a_relevant_chunk"],
                                  configs=[c["prompt"], c["retrieval"]])
        strict = configs.save(ws.store, configs.RetrievalConfig.build(
            name="pedal-docs", embedding_model="tfidf", embedding_model_version=f"sklearn-{sklearn.__version__}",
            index_snapshot=c["retrieval"].index_snapshot, top_k=1, chunking={"strategy": "paragraph"},
            filters={"min_score": 0.45}))
    week2 = Assistant(index, c["prompt"], strict, c["tool"], c["guardrail"], min_score=0.45)
    serve(workspace, "week2", week2, questions, rounds=4, host=host)
    with Workspace.open(host, workspace) as ws:
        reference = TracesWindow(path=str(workspace / "traces" / "week1"), json_schema=str(HERE / "answer.schema.json"))
        profile = profile_batches(reference.batches(context=None), time_column="started_at")
        save_profile(ws, profile, name="pedal-traces", source="traces:week1")
    run, outputs = run_chain(load_chain(folder / "monitor.yaml", host), host)
    report = next(r for r in outputs.values() if getattr(r, "kind", "") == "monitor_report")
    summary = {"workspace": str(workspace), "index_snapshot": snapshot.id, "configs": {k: v.id for k, v in c.items()},
               "retrieval_week2": strict.id,
               "evaluation": {"id": evaluation.id, "metrics": evaluation.metrics},
               "monitor": {"id": report.id, "verdict": report.verdict,
                           "alerts": sorted({a["rule"] for a in report.alerts}),
                           "drifted": report.details["drifted_columns"]}}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
