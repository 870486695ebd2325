"""Ranking and retrieval metrics over ranked lists: hit rate@k, MRR and nDCG@k.

Plain functions of ``relevant`` (per query: a collection of relevant ids, or a mapping
id -> graded gain) and ``retrieved`` (per query: ids in ranked order), so retrieval for
RAG is judged with the same numbers::

    from tether.plugins.evaluation.ranking import ranking_metrics
    ranking_metrics([{"d1"}, {"d7", "d9"}], [["d3", "d1"], ["d9", "d2"]], k=5)
    # {"hit_rate@5": 1.0, "mrr": 0.75, "ndcg@5": ..., "queries": 2.0}

Queries without any relevant id are left out (no ranking of them can be right or wrong);
``queries`` counts those scored. nDCG is scikit-learn's ``ndcg_score`` on the ranked lists
(a retrieved id scores by its rank; a relevant id not retrieved within ``k`` ranks below).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tether.errors import DataError

Relevant = Collection[Any] | Mapping[Any, float]


def _gains(relevant: Relevant) -> dict[Any, float]:
    if isinstance(relevant, Mapping):
        gains = {key: float(value) for key, value in relevant.items()}
        if any(g < 0 for g in gains.values()):
            raise DataError("relevance gains must not be negative")
        return {key: g for key, g in gains.items() if g > 0}
    if isinstance(relevant, (str, bytes)):
        return {relevant: 1.0}
    return dict.fromkeys(relevant, 1.0)


def _pairs(relevant: Sequence[Relevant], retrieved: Sequence[Sequence[Any]], k: int):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"k must be a positive whole number, got {k!r}")
    if len(relevant) != len(retrieved):
        raise DataError(f"relevant has {len(relevant):,} queries but retrieved has {len(retrieved):,}; "
                        "give one of each per query")
    out = []
    for rel, ranked in zip(relevant, retrieved, strict=True):
        if isinstance(ranked, (str, bytes)):
            raise DataError("each retrieved entry must be a list of ids in ranked order, got a string")
        gains = _gains(rel)
        if gains:
            out.append((gains, list(ranked)))
    return out


def hit_rate_at_k(relevant: Sequence[Relevant], retrieved: Sequence[Sequence[Any]], k: int = 10) -> float:
    """Share of queries with at least one relevant id among the first ``k`` retrieved."""
    pairs = _pairs(relevant, retrieved, k)
    if not pairs:
        return float("nan")
    return sum(any(doc in gains for doc in ranked[:k]) for gains, ranked in pairs) / len(pairs)


def mrr(relevant: Sequence[Relevant], retrieved: Sequence[Sequence[Any]], k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant id (0 when none is within ``k``)."""
    pairs = _pairs(relevant, retrieved, k or max((len(r) for r in retrieved), default=1) or 1)
    if not pairs:
        return float("nan")
    total = 0.0
    for gains, ranked in pairs:
        rank = next((i for i, doc in enumerate(ranked[:k] if k else ranked, start=1) if doc in gains), None)
        total += 1.0 / rank if rank else 0.0
    return total / len(pairs)


def ndcg_at_k(relevant: Sequence[Relevant], retrieved: Sequence[Sequence[Any]], k: int = 10) -> float:
    """Mean normalised discounted cumulative gain at ``k`` (graded gains when ``relevant``
    maps ids to gains), computed by scikit-learn's ``ndcg_score``."""
    import numpy as np
    from sklearn.metrics import ndcg_score

    pairs = _pairs(relevant, retrieved, k)
    if not pairs:
        return float("nan")
    width = max(k + len(gains) for gains, _ in pairs)
    y_true = np.zeros((len(pairs), width))
    y_score = np.full((len(pairs), width), -1.0)
    for row, (gains, ranked) in enumerate(pairs):
        top = list(dict.fromkeys(ranked))[:k]
        for i, doc in enumerate(top):  # ranked ids score by rank; padding keeps k slots above the rest
            y_true[row, i] = gains.get(doc, 0.0)
            y_score[row, i] = float(width - i)
        y_score[row, len(top):k] = float(width - k)  # empty slots: irrelevant, still above the unretrieved
        missing = [g for doc, g in gains.items() if doc not in top]
        y_true[row, k:k + len(missing)] = missing
        y_score[row, k:] = -1.0 - np.arange(width - k)  # ranked below every retrieved slot
    return float(ndcg_score(y_true, y_score, k=k))


def ranking_metrics(relevant: Sequence[Relevant], retrieved: Sequence[Sequence[Any]], k: int = 10) -> dict[str, float]:
    """``hit_rate@k``, ``mrr`` (within ``k``), ``ndcg@k`` and the number of ``queries`` scored."""
    queries = len(_pairs(relevant, retrieved, k))
    return {f"hit_rate@{k}": hit_rate_at_k(relevant, retrieved, k), "mrr": mrr(relevant, retrieved, k),
            f"ndcg@{k}": ndcg_at_k(relevant, retrieved, k), "queries": float(queries)}
