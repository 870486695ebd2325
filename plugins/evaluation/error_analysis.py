"""Error analysis: the rows with the highest loss and a seeded sample of correctly
predicted ones, as row positions into the snapshot (or the predictions file) with the key
column's value when there is one."""

from __future__ import annotations

from typing import Any

from .inputs import Predictions
from .metrics import row_loss


def examples(p: Predictions, *, rows: Any, ids: Any = None, id_column: str = "", count: int = 20,
             rng) -> dict[str, Any]:
    """``{"id_column", "loss", "highest_loss": [...], "correct": [...]}``; ``rows`` are the
    evaluated rows' positions (snapshot rows for a stage), ``ids`` their key values."""
    import numpy as np

    if count == 0:
        return {}
    loss, name = row_loss(p)
    n = len(loss)
    head = np.argpartition(-loss, min(count, n) - 1)[: min(count, n)] if n > count else np.arange(n)
    top = head[np.lexsort((head, -loss[head]))]  # highest loss first, ties by row
    if p.task == "regression":
        correct = np.flatnonzero(loss <= np.quantile(loss, 0.1))  # the best tenth counts as "correct"
    else:
        correct = np.flatnonzero(p.pred == p.y)
    sample = np.sort(rng.choice(correct, size=min(count, len(correct)), replace=False)) if len(correct) else []
    return {"id_column": id_column or "row", "loss": name,
            "highest_loss": [_row(p, i, rows, ids, loss) for i in top],
            "correct": [_row(p, i, rows, ids, loss) for i in sample]}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _row(p: Predictions, i: int, rows, ids, loss) -> dict[str, Any]:
    out: dict[str, Any] = {"row": int(rows[i])}
    if ids is not None:
        out["id"] = _plain(ids[i])
    if p.task == "regression":
        out.update(label=float(p.y[i]), prediction=float(p.pred[i]))
    else:
        out.update(label=str(p.classes[p.y[i]]), prediction=str(p.classes[p.pred[i]]))
        if p.scores is not None:
            out["score"] = round(float(p.scores[i] if p.scores.ndim == 1 else p.scores[i].max()), 6)
    out["loss"] = round(float(loss[i]), 6)
    return out
