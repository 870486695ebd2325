"""Baselines scored on the same rows as the model: a dummy (the prior, or the mean), a
user rule (``module:function`` over the raw rows) and registered model versions re-scored.
Each becomes a :class:`~.Predictions` of the task, scored like the model."""

from __future__ import annotations

from typing import Any

import attrs
from tether.callables import import_callable
from tether.errors import DataError

from .inputs import Predictions, classification, regression


def dummy(p: Predictions, strategy: str | None, prior: Any = None, *, seed: int = 0) -> Predictions:
    """scikit-learn's dummy estimator fitted on ``prior`` (labels as the evaluated rows
    encode them; the training labels when known, else the evaluated ones) and applied to
    the evaluated rows."""
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor

    prior = p.y if prior is None else prior
    zeros = np.zeros((len(prior), 1))
    rows = np.zeros((p.rows, 1))
    if p.task == "regression":
        model = DummyRegressor(strategy=strategy or "mean").fit(zeros, prior)
        return attrs.evolve(p, pred=model.predict(rows).astype(float))
    model = DummyClassifier(strategy=strategy or "prior", random_state=seed).fit(zeros, prior)
    proba = np.zeros((p.rows, len(p.classes)))
    proba[:, model.classes_] = model.predict_proba(rows)
    pred = model.predict(rows).astype(np.int64)
    if p.scores is None:
        return attrs.evolve(p, pred=pred)
    return attrs.evolve(p, pred=pred, scores=proba[:, 1] if p.task == "binary" else proba)


def from_outputs(p: Predictions, output: Any, what: str, *, threshold: float = 0.5) -> Predictions:
    """A rule's or model's outputs on the evaluated rows as the task's predictions:
    classification takes class labels or probabilities (binary: of the positive class;
    multiclass: one column per class), regression values."""
    import numpy as np
    import pandas as pd

    values = output.to_numpy() if isinstance(output, (pd.Series, pd.DataFrame)) else np.asarray(output)
    if len(values) != p.rows:
        raise DataError(f"{what} returned {len(values):,} values for {p.rows:,} rows; return one per row")
    if p.task == "regression":
        return regression(p.y, values)
    labels = pd.Index(list(p.classes)).get_indexer(values) if values.ndim == 1 else np.array([-1])
    if values.ndim == 1 and (labels >= 0).all():
        pred = labels.astype(np.int64)
        scores = pred.astype(float) if p.task == "binary" else None  # a hard rule scores 0 or 1
        return attrs.evolve(p, pred=pred, scores=scores if p.scores is not None else None)
    try:
        return attrs.evolve(classification(p.task, np.asarray(p.classes)[p.y], scores=values,
                                                  classes=p.classes, threshold=threshold), y=p.y)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def rule(spec: str, frame, p: Predictions, *, name: str, threshold: float) -> Predictions:
    """Apply the user's ``module:function`` to the evaluated rows' raw columns."""
    func = import_callable(spec, where=f"baselines.{name}.rule")
    if frame is None:
        raise DataError(f"baseline '{name}' ({spec}) needs the raw rows; pass data= (or evaluate in a chain)")
    try:
        output = func(frame)
    except Exception as exc:  # noqa: BLE001 - the user's rule; reported in one line
        raise DataError(f"baseline '{name}': {spec} raised {type(exc).__name__}: {exc}") from None
    return from_outputs(p, output, f"baseline '{name}' ({spec})", threshold=threshold)


def model_outputs(estimator, X, p: Predictions):
    """A fitted estimator's outputs on ``X`` with its classes lined up with the evaluation's."""
    import numpy as np

    if p.task == "regression" or not callable(getattr(estimator, "predict_proba", None)):
        return estimator.predict(X)
    proba = estimator.predict_proba(X)
    known = list(p.classes)
    out = np.zeros((len(X), len(known)))
    for j, cls in enumerate(getattr(estimator, "classes_", range(proba.shape[1]))):
        value = cls.item() if hasattr(cls, "item") else cls
        if value in known:
            out[:, known.index(value)] = proba[:, j]
    return out[:, 1] if p.task == "binary" else out
