"""``tether.evaluate(y_true, y_pred_or_score, ...)``: judge predictions made anywhere with
the rules of the evaluate stage, and get the same :class:`~tether.records.Evaluation`."""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigError, DataError
from tether.records import Evaluation

from .engine import Rows, Subject
from .engine import evaluate as run
from .inputs import as_array, classification, regression
from .params import EvaluateParams
from .tasks import detect_task


def build_params(params: dict[str, Any]) -> EvaluateParams:
    """Structure plain parameters (as a chain writes them) into :class:`EvaluateParams`;
    errors are ConfigErrors naming the key path."""
    from tether.serde import make_converter, structure_problems

    try:
        return make_converter().structure(dict(params), EvaluateParams)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - cattrs' grouped errors, flattened into one line
        problems = structure_problems(exc)
        raise ConfigError("; ".join(f"{path}: {problem}" if path else problem for path, problem in problems)) from None


def _looks_like_scores(values, y) -> bool:
    """Numbers in [0, 1] that are not all label values are probabilities."""
    import numpy as np
    import pandas as pd

    if values.ndim == 2:
        return True
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_):
        return False
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values), equal_nan=True):
        return True  # fractions: not labels
    labels = pd.unique(np.asarray(y))
    return not np.isin(pd.unique(values), labels).all()


def evaluate(y_true: Any, y_pred_or_score: Any = None, *, pred: Any = None, task: str | None = None,
             classes: Any = None, data: Any = None, ids: Any = None, id_column: str = "", label: str = "",
             source: str = "python", **params: Any) -> Evaluation:
    """Evaluate predictions: ``y_pred_or_score`` holds predicted labels (or values), or
    probabilities (binary: of the positive class, the larger of ``classes``; multiclass: one
    column per class in the order of ``classes``). ``pred`` adds hard labels beside scores.
    ``data`` (a DataFrame, same rows) holds the raw columns slices and rules read; ``ids``
    key values for the error examples. The remaining keyword arguments are the evaluate
    stage's parameters (``min``, ``beats``, ``slices``, ``slice_gates``, ``threshold`` ...;
    see docs/evaluation.md)::

        ev = tether.evaluate(y, proba, data=frame, slices=[{"column": "region"}],
                             slice_gates=[{"slice": "region", "metric": "recall", "min": 0.6}])
        ev.passed, ev.metrics["roc_auc"], [o.message for o in ev.outcomes if not o.passed]
    """
    import numpy as np

    config = build_params({**params, **({"task": task} if task else {})})
    if y_pred_or_score is None and pred is None:
        raise DataError("give the predictions or scores to evaluate")
    values = None if y_pred_or_score is None else as_array(y_pred_or_score, "the predictions")
    y = as_array(y_true, "the label")
    scores = values if values is not None and _looks_like_scores(values, y) else None
    hard = pred if pred is not None else (values if scores is None else None)
    task = config.task or detect_task(y, scores=scores)
    if task == "multiclass" and scores is not None and scores.ndim == 1:
        raise DataError("the label looks like classes (few distinct whole numbers) but the predictions are one "
                        "fractional number per row; pass task='regression' (--task regression), or one probability "
                        "column per class")
    if task == "regression":
        p = regression(y, hard if hard is not None else values)
    else:
        p = classification(task, y, pred=hard, scores=scores, classes=classes, threshold=config.threshold)
    if data is not None and len(data) != p.rows:
        raise DataError(f"data has {len(data):,} rows but the label has {p.rows:,}; they must be the same rows")
    frame = data.reset_index(drop=True) if data is not None else None
    rows = Rows(frame=frame, positions=np.arange(p.rows), ids=None if ids is None else np.asarray(ids),
                id_column=id_column, pred_from_scores=hard is None)
    return run(config, p, subject=Subject(label=label, source=source), rows=rows)
