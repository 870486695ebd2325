"""What is evaluated: labels, predictions and scores checked and put in one shape.

:class:`Predictions` holds the label and the model's outputs for one task: for
classification the label and predicted label as class indices (``classes`` holds the
values, the positive class last for a binary task) and the scores (``P(positive)`` for a
binary task, one column per class for a multiclass one); for regression the values. Bad
input is a one-line :class:`~tether.errors.DataError`.
"""

from __future__ import annotations

from typing import Any

import attrs
from tether.errors import DataError

#: how far a row of class probabilities may be from summing to 1
SUM_TOLERANCE = 1e-3


@attrs.frozen(kw_only=True)
class Predictions:
    task: str
    y: Any  # numpy: class indices (classification) or float values (regression)
    pred: Any  # numpy: predicted class indices or values
    scores: Any = None  # numpy (n,) for binary, (n, K) for multiclass, or None
    classes: tuple[Any, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.y)

    def take(self, index) -> Predictions:
        """The rows at ``index`` (positions)."""
        return attrs.evolve(self, y=self.y[index], pred=self.pred[index],
                            scores=None if self.scores is None else self.scores[index])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def as_array(values: Any, what: str):
    import numpy as np
    import pandas as pd

    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    if isinstance(values, pd.DataFrame):
        return values.to_numpy()
    array = np.asarray(values)
    if array.ndim == 0:
        raise DataError(f"{what} must be a sequence of values, got a single {type(values).__name__}")
    return array


def _check_length(n: int, values, what: str) -> None:
    if len(values) != n:
        raise DataError(f"{what} has {len(values):,} rows but the label has {n:,}; they must be the same rows")


def _check_probabilities(scores, what: str) -> None:
    import numpy as np

    if not np.issubdtype(scores.dtype, np.number):
        raise DataError(f"{what} must be numbers, got {scores.dtype}")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise DataError(f"{what} has {int(bad.sum()):,} missing or infinite values; every row needs a score")
    outside = (scores < 0) | (scores > 1)
    if outside.any():
        first = scores[outside].flat[0]
        raise DataError(f"{what} must be probabilities in [0, 1]; {int(outside.sum()):,} values are outside "
                        f"(e.g. {first:g})")
    if scores.ndim == 2:
        sums = scores.sum(axis=1)
        off = np.abs(sums - 1) > SUM_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise DataError(f"{what}: class probabilities must sum to 1 in every row; {int(off.sum()):,} rows do "
                            f"not (row {row} sums to {sums[row]:.4g})")


def _labels(y, what: str):
    import numpy as np
    import pandas as pd

    missing = pd.isna(y)
    if np.any(missing):
        raise DataError(f"{what} has {int(np.sum(missing)):,} missing values; drop or fill those rows first")
    return y


def classification(task: str, y_true: Any, *, pred: Any = None, scores: Any = None,
                   classes: Any = None, threshold: float = 0.5) -> Predictions:
    """Check and encode a classification task's inputs; ``scores`` are probabilities
    (binary: ``(n,)`` of the positive class or ``(n, 2)``; multiclass: ``(n, K)`` in the
    order of ``classes``, which defaults to the sorted label values)."""
    import numpy as np

    y = _labels(as_array(y_true, "the label"), "the label")
    n = len(y)
    if n == 0:
        raise DataError("nothing to evaluate: the label has no rows")
    if pred is None and scores is None:
        raise DataError("give the predicted labels or the scores (probabilities) to evaluate")
    if scores is not None:
        scores = as_array(scores, "the scores").astype(float, copy=False)
        _check_length(n, scores, "the scores")
        _check_probabilities(scores, "the scores")
        if task == "binary" and scores.ndim == 2:
            if scores.shape[1] != 2:
                raise DataError(f"binary scores need one column (or two), got {scores.shape[1]}")
            scores = scores[:, 1]
    if pred is not None:
        pred = _labels(as_array(pred, "the predictions"), "the predictions")
        _check_length(n, pred, "the predictions")
    if classes is None:
        values = np.concatenate([y, pred]) if pred is not None else y
        try:
            classes = np.unique(values)
        except TypeError:
            raise DataError("the label and the predictions mix types (numbers and text); give predictions of the "
                            "label's type, or scores as numbers") from None
    classes = tuple(classes.tolist() if hasattr(classes, "tolist") else classes)
    if task == "binary" and len(classes) != 2:
        raise DataError(f"a binary task needs exactly 2 classes, the label has {len(classes)}: "
                        f"{', '.join(map(str, classes[:6]))}; set task: multiclass")
    if task == "multiclass" and scores is not None and (scores.ndim != 2 or scores.shape[1] != len(classes)):
        raise DataError(f"multiclass scores need one column per class ({len(classes)}), got shape {scores.shape}")
    y_idx = _encode(y, classes, "the label")
    if task == "binary" and scores is not None and y_idx.min() == y_idx.max():
        raise DataError(f"the label has a single class ({_plain(y[0])!r}) in all {n:,} rows: roc_auc needs both "
                        "classes; evaluate on rows with both")
    if pred is not None:
        pred_idx = _encode(pred, classes, "the predictions")
    elif task == "binary":
        pred_idx = (scores >= threshold).astype(np.int64)
    else:
        pred_idx = scores.argmax(axis=1)
    return Predictions(task=task, y=y_idx, pred=pred_idx, scores=scores, classes=classes)


def _encode(values, classes: tuple, what: str):
    import numpy as np
    import pandas as pd

    codes = pd.Index(list(classes)).get_indexer(values).astype(np.int64)
    unknown = codes < 0
    if unknown.any():
        example = _plain(values[np.flatnonzero(unknown)[0]])
        raise DataError(f"{what} has {int(unknown.sum()):,} values that are not among the classes "
                        f"({', '.join(map(str, classes[:8]))}), e.g. {example!r}")
    return codes


def regression(y_true: Any, pred: Any) -> Predictions:
    """Check a regression task's label and predicted values (finite numbers, same length)."""
    import numpy as np

    y = _labels(as_array(y_true, "the label"), "the label")
    if len(y) == 0:
        raise DataError("nothing to evaluate: the label has no rows")
    if pred is None:
        raise DataError("a regression evaluation needs the predicted values")
    pred = as_array(pred, "the predictions")
    _check_length(len(y), pred, "the predictions")
    try:
        y, pred = y.astype(float), pred.astype(float)
    except (TypeError, ValueError):
        raise DataError("a regression evaluation needs numeric labels and predictions") from None
    if pred.ndim != 1:
        raise DataError(f"regression predictions need one value per row, got shape {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise DataError(f"the predictions have {int((~np.isfinite(pred)).sum()):,} missing or infinite values")
    return Predictions(task="regression", y=y, pred=pred)
