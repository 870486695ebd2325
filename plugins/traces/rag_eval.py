"""RAG evaluation: retrieval quality (hit rate@k, MRR, nDCG@k) over a versioned labelled
question set, and answer checks by the user's rubric functions.

    from tether.plugins.traces.rag_eval import evaluate_rag
    evaluation = evaluate_rag(store, question_set, assistant.ask, k=3,
                              rubrics=["rubrics:not_a_refusal"], configs=[prompt, retrieval])

``answer(question_text)`` returns ``{"answer": text, "chunks": [chunk ids, best first]}``.
A rubric is ``module:function`` called as ``rubric(question, answer, chunks)`` (the
question is the labelled dict) and returns a bool or a score in [0, 1]; its mean is the
metric ``rubric.<function>``. A rubric that raises scores 0 for that question and adds a
finding. The ranking metrics are evaluation's (:mod:`tether.plugins.evaluation.ranking`);
the result is an ``evaluation`` record (task ``ranking``) linked in lineage to the question
set and the configs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tether.callables import import_callable
from tether.errors import ConfigError
from tether.records import Evaluation, Finding, new_id


def ranking_metrics(relevant: list[list[str]], retrieved: list[list[str]], k: int) -> dict[str, float]:
    """hit_rate@k, mrr, ndcg@k and queries (evaluation's functions); undefined ones (no
    question with a relevant id) are left out, never NaN."""
    import math

    from tether.plugins.evaluation.ranking import ranking_metrics as metrics

    return {name: value for name, value in metrics(relevant, retrieved, k=k).items() if not math.isnan(value)}


def _rubrics(specs: Sequence[str]) -> list[tuple[str, Callable]]:
    out = []
    for i, spec in enumerate(specs):
        func = import_callable(spec, where=f"rubrics[{i}]")
        out.append((spec.rpartition(":")[2], func))
    return out


def _score(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise ConfigError(f"{where}: a rubric returns a bool or a score in [0, 1], got {value!r}")


def evaluate_rag(store: Any, question_set: Any, answer: Callable[[str], dict], *, k: int = 5,
                 rubrics: Sequence[str] = (), configs: Sequence[Any] = ()) -> Evaluation:
    """Ask every question of ``question_set``, score retrieval and answers, store and return
    the ``evaluation`` record (see the module docstring)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k: must be an integer >= 1, got {k!r}")
    checks = _rubrics(rubrics)
    relevant, retrieved, rows, findings = [], [], [], []
    scores: dict[str, list[float]] = {name: [] for name, _ in checks}
    for q in question_set.questions:
        result = answer(q["question"])
        chunks = [str(c) for c in result.get("chunks", [])]
        relevant.append(list(q.get("relevant", [])))
        retrieved.append(chunks)
        row = {"id": str(q.get("id", len(rows))), "question": q["question"], "answer": result.get("answer", ""),
               "chunks": chunks[:k], "relevant": relevant[-1]}
        for name, func in checks:
            try:
                value = _score(func(q, result.get("answer", ""), chunks), f"rubric {name}")
            except Exception as exc:  # the rubric's own failure: scored 0, reported
                value = 0.0
                findings.append(Finding(check=f"rubric.{name}", severity="warning",
                                        message=f"question {row['id']}: {type(exc).__name__}: {exc}"))
            row[f"rubric.{name}"] = value
            scores[name].append(value)
        rows.append(row)
    metrics = {**ranking_metrics(relevant, retrieved, k), "rows": float(len(rows))}
    metrics.update({f"rubric.{name}": sum(v) / len(v) for name, v in scores.items() if v})
    evaluation = Evaluation(id=new_id("eval"), model_id="", feature_set_id="", split="questions", evaluator="rag",
                            metrics=metrics, passed=True, findings=tuple(findings), task="ranking",
                            source="python", examples={"questions": rows, "k": k})
    parents = [(question_set.id, "questions")] + [(c.id, c.kind) for c in configs]
    store.put(evaluation, parents=parents)
    return evaluation
