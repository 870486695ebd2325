"""Tasks and their metric names: which metrics each task computes, which of them are
better when lower, and how a task is told from the label and the model's outputs."""

from __future__ import annotations

from typing import Any

from tether.errors import DataError

TASKS = ("binary", "multiclass", "regression", "ranking")

#: the metrics of each task, in the order reports show them
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "log_loss", "brier", "accuracy", "balanced_accuracy",
               "precision", "recall", "f1", "positive_rate", "rows"),
    "multiclass": ("roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted",
                   "precision_macro", "precision_weighted", "recall_macro", "recall_weighted", "rows"),
    "regression": ("mae", "rmse", "r2", "mape", "median_ae", "rows"),
    "ranking": ("hit_rate@k", "mrr", "ndcg@k", "rows"),
}

#: metrics where a smaller value is the better model
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "mape", "median_ae"})

#: the metric ``beats`` compares on when a rule names none
PRIMARY = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "r2", "ranking": "ndcg@k"}

#: a label with more distinct values than this (all integers) is read as a regression target
MAX_CLASSES = 50


def metrics_of(tasks: tuple[str, ...], k: int = 10) -> tuple[str, ...]:
    """The metric names the given tasks compute (``@k`` spelt with ``k``), each once, in order."""
    names: dict[str, None] = {}
    for task in tasks:
        for name in METRICS[task]:
            names[name.replace("@k", f"@{k}")] = None
    return tuple(names)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def primary_metric(task: str, *, has_scores: bool, k: int = 10) -> str:
    """The metric ``beats`` uses by default: AUC needs scores, so hard labels fall back to F1."""
    if task == "binary" and not has_scores:
        return "f1"
    return PRIMARY[task].replace("@k", f"@{k}")


def detect_task(y: Any, *, model: Any = None, scores: Any = None) -> str:
    """The task of a label (a pandas Series or array), helped by the model when there is one:
    a model with ``predict_proba`` and ``classes_`` is a classifier, binary with two
    classes; without one, a float label with fractional values (or many distinct integers)
    is a regression target, two values binary, more multiclass."""
    import numpy as np
    import pandas as pd

    classes = getattr(model, "classes_", None)
    if model is not None and classes is not None and callable(getattr(model, "predict_proba", None)):
        return "binary" if len(classes) == 2 else "multiclass"
    if model is not None and getattr(model, "_estimator_type", None) == "regressor":
        return "regression"
    series = pd.Series(np.asarray(y) if not isinstance(y, pd.Series) else y)
    values = series.dropna()
    if values.empty:
        raise DataError("the label has no values to evaluate")
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "binary" if values.nunique() <= 2 else "multiclass"
    numbers = values.to_numpy(dtype=float)
    distinct = len(np.unique(numbers))
    if not np.all(np.mod(numbers, 1) == 0) or distinct > MAX_CLASSES:
        return "regression"
    if distinct <= 2:
        return "binary"
    return "multiclass"
