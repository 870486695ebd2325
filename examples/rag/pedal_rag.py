"""A small retrieval-augmented question answering service over the documents in docs/,
traced end to end with tether.tracing.

Retrieval is TF-IDF (scikit-learn) over paragraph chunks; the "model" is a deterministic
local stand-in for an LLM call: it fills an answer template from the best chunk, counts
tokens by a rule (one token per four characters, rounded up) and prices them, so the
example runs offline and gives the same traces every time.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from tether import tracing

HERE = Path(__file__).resolve().parent
PRICE_PER_1K_TOKENS = {"input": 0.0005, "output": 0.0015}
REFUSAL = "I do not have information about that in the Pedal City handbook."


def tokens(text: str) -> int:
    """Tokens by a fixed rule (no tokenizer): one per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def chunks(folder: Path = HERE / "docs") -> list[dict]:
    """The paragraphs of every document, ``{chunk_id: <doc>#<n>, document, text}``."""
    out = []
    for path in sorted(folder.glob("*.md")):
        paragraphs = [p.strip() for p in path.read_text().split("\n") if p.strip() and not p.startswith("#")]
        out += [{"chunk_id": f"{path.stem}#{n}", "document": path.stem, "text": p} for n, p in enumerate(paragraphs)]
    return out


def chunk_table():
    """The chunks as a table: what the index snapshot (index.yaml) captures."""
    import pandas as pd

    return pd.DataFrame(chunks())


class Index:
    """TF-IDF over chunks (rows with ``chunk_id`` and ``text``)."""

    def __init__(self, rows: list[dict]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.chunk_ids = [r["chunk_id"] for r in rows]
        self.texts = [r["text"] for r in rows]
        self.vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(self.texts)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        scores = (self.matrix @ self.vectorizer.transform([query]).T).toarray().ravel()
        order = scores.argsort()[::-1][:k]
        return [(self.chunk_ids[i], round(float(scores[i]), 4)) for i in order if scores[i] > 0]

    def text(self, chunk_id: str) -> str:
        return self.texts[self.chunk_ids.index(chunk_id)]


def fare(minutes: int, included: int = 30) -> float:
    """The overtime fee of a ride (the tool the model may call)."""
    return 2.0 * math.ceil(max(0, minutes - included) / 15)


def local_model(prompt: str, best_chunk: str | None) -> str:
    """The stand-in for the LLM call: a JSON answer built from the best chunk."""
    if best_chunk is None:
        return json.dumps({"answer": REFUSAL, "sources": []})
    sentence = re.split(r"(?<=[.!?])\s", best_chunk)[0]
    return json.dumps({"answer": sentence, "sources": []})


class Assistant:
    """Answers questions with retrieval, a prompt template, a guardrail and a tool."""

    def __init__(self, index: Index, prompt, retrieval, tool, guardrail, *, min_score: float = 0.1) -> None:
        self.index, self.prompt, self.retrieval = index, prompt, retrieval
        self.tool, self.guardrail, self.min_score = tool, guardrail, min_score

    def ask(self, question: str) -> dict:
        with tracing.span("query", "answer", text=question):
            hits = self._retrieve(question)
            context = "\n".join(self.index.text(c) for c, _ in hits)
            rendered = self.prompt.render(context=context, question=question)
            with tracing.span("prompt", template_id=self.prompt.id, template_version=self.prompt.version,
                              variables={"question": question}, rendered_hash=tracing.text_hash(rendered)):
                pass
            minutes = re.search(r"(\d+)[- ]minute", question)
            extra = self._fare(int(minutes.group(1))) if minutes else None
            text = self._generate(rendered, hits)
            if extra is not None:
                answer = json.loads(text)
                answer["answer"] += f" A {minutes.group(1)}-minute ride costs {extra:.2f} euros in overtime."
                text = json.dumps(answer)
            text = self._check(text)
            with tracing.span("output", text=text, format="json", sources=[c for c, _ in hits]):
                pass
            return {"answer": json.loads(text)["answer"], "chunks": [c for c, _ in hits]}

    def _retrieve(self, question: str) -> list[tuple[str, float]]:
        with tracing.span("retrieval", query=question, config_id=self.retrieval.id,
                          index_snapshot=self.retrieval.index_snapshot, embedding_model="tfidf",
                          embedding_model_version=self.retrieval.embedding_model_version,
                          top_k=self.retrieval.top_k) as span:
            hits = [h for h in self.index.search(question, self.retrieval.top_k) if h[1] >= self.min_score]
            span.set(chunk_ids=[c for c, _ in hits], scores=[s for _, s in hits])
        return hits

    def _fare(self, minutes: int) -> float:
        with tracing.span("tool", tool="fare", config_id=self.tool.id, input={"minutes": minutes}, retries=0) as span:
            value = fare(minutes)
            span.set(output={"overtime_eur": value})
        return value

    def _generate(self, rendered: str, hits) -> str:
        settings = dict(self.prompt.model.get("settings", {}))
        with tracing.span("llm", provider="local", model=self.prompt.model.get("model", "template-filler"),
                          model_version="1", settings=settings) as span:
            text = local_model(rendered, self.index.text(hits[0][0]) if hits else None)
            n_in, n_out = tokens(rendered), tokens(text)
            span.set(input_tokens=n_in, output_tokens=n_out, finish_reason="stop",
                     cost=round(n_in / 1000 * PRICE_PER_1K_TOKENS["input"]
                                + n_out / 1000 * PRICE_PER_1K_TOKENS["output"], 8))
        return text

    def _check(self, text: str) -> str:
        banned = self.guardrail.checks.get("banned_words", {}).get("words", [])
        with tracing.span("guardrail", config_id=self.guardrail.id, check="banned_words") as span:
            found = [w for w in banned if w in text.lower()]
            span.set(triggered=bool(found))
        return json.dumps({"answer": REFUSAL, "sources": []}) if found else text
