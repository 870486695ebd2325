"""Point metrics of each task with scikit-learn's metric functions, and the tables beside
them: per-class table, confusion matrix, ROC/PR curves, calibration, the threshold sweep
and residual quantiles. Metrics that are undefined on the rows (AUC with one class) are
left out, never NaN."""

from __future__ import annotations

from typing import Any

from .counts import multiclass_cells, rates
from .inputs import Predictions

#: how many points a stored curve keeps at most
CURVE_POINTS = 200
#: the residual quantiles a regression evaluation records
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: log loss clips probabilities to [EPS, 1 - EPS]
EPS = 1e-15


def compute(p: Predictions, *, k: int = 10, counted: bool = True) -> dict[str, float]:
    """The task's metrics on the rows of ``p``: the score metrics (AUC, average precision,
    log loss, Brier) and the regression errors from scikit-learn; the threshold metrics
    (accuracy, precision, recall, F1 and their averages) from the confusion counts by the
    formulas the bootstrap uses (the same values as scikit-learn's, which a test checks,
    without its per-call input checks on every segment); ``counted=False`` asks
    scikit-learn for those too."""
    if p.task == "binary":
        return binary(p, counted=counted)
    if p.task == "multiclass":
        return multiclass(p, counted=counted)
    return regression(p)


def _finite(out: dict[str, Any]) -> dict[str, float]:
    import math

    return {key: float(value) for key, value in out.items() if math.isfinite(float(value))}


def binary(p: Predictions, *, counted: bool = False) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    y, pred = p.y, p.pred
    out: dict[str, Any] = {}
    both = len(y) > 0 and y.min() != y.max()  # both classes among the rows
    if p.scores is not None:
        s = p.scores
        if both:
            out["roc_auc"] = m.roc_auc_score(y, s)
            out["average_precision"] = m.average_precision_score(y, s)
        out["log_loss"] = m.log_loss(y, np.clip(s, EPS, 1 - EPS), labels=[0, 1])
        out["brier"] = m.brier_score_loss(y, s, pos_label=1)
    if counted:
        tn, fp, fn, tp = np.bincount(y * 2 + pred, minlength=4).astype(float)
        out.update({key: float(v) for key, v in rates(tp, fp, fn, tn).items()})
    else:
        out["accuracy"] = m.accuracy_score(y, pred)
        if both:
            out["balanced_accuracy"] = m.balanced_accuracy_score(y, pred)
        out["precision"] = m.precision_score(y, pred, zero_division=np.nan)
        out["recall"] = m.recall_score(y, pred, zero_division=np.nan)
        out["f1"] = m.f1_score(y, pred, zero_division=np.nan)
        out["positive_rate"] = float(np.mean(pred))
    out["rows"] = len(y)
    return _finite(out)


def multiclass(p: Predictions, *, counted: bool = False) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    y, pred, labels = p.y, p.pred, list(range(len(p.classes)))
    out: dict[str, Any] = {}
    if p.scores is not None:
        present = np.bincount(y, minlength=len(labels)) > 0
        if present.all():  # one-vs-rest AUC needs every class among the rows
            out["roc_auc"] = m.roc_auc_score(y, p.scores, multi_class="ovr", average="macro", labels=labels)
        out["log_loss"] = m.log_loss(y, np.clip(p.scores, EPS, 1), labels=labels)
    if counted:
        k = len(labels)
        cells = np.bincount(y * k + pred, minlength=k * k)[None, :]
        out.update({key: float(v[0]) for key, v in multiclass_cells(cells).items()})
        out["rows"] = len(y)
        return _finite(out)
    out["accuracy"] = m.accuracy_score(y, pred)
    if y.min() != y.max():
        out["balanced_accuracy"] = m.balanced_accuracy_score(y, pred)
    for average in ("macro", "weighted"):  # over the classes among the rows' labels and predictions
        out[f"f1_{average}"] = m.f1_score(y, pred, average=average, zero_division=0)
        out[f"precision_{average}"] = m.precision_score(y, pred, average=average, zero_division=0)
        out[f"recall_{average}"] = m.recall_score(y, pred, average=average, zero_division=0)
    out["rows"] = len(y)
    return _finite(out)


def regression(p: Predictions) -> dict[str, float]:
    from sklearn import metrics as m

    y, pred = p.y, p.pred
    out = {"mae": m.mean_absolute_error(y, pred), "rmse": m.root_mean_squared_error(y, pred)}
    if len(y) > 1:
        out["r2"] = m.r2_score(y, pred)
    if (y != 0).all():  # a percentage error of a zero label is undefined
        out["mape"] = m.mean_absolute_percentage_error(y, pred)
    out["median_ae"] = m.median_absolute_error(y, pred)
    out["rows"] = len(y)
    return _finite(out)


# --- the tables beside the metrics ------------------------------------------------------------


def per_class(p: Predictions) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-class table and the confusion matrix (rows: true class, columns: predicted)."""
    from sklearn import metrics as m

    labels = list(range(len(p.classes)))
    precision, recall, f1, support = m.precision_recall_fscore_support(p.y, p.pred, labels=labels, zero_division=0)
    names = [str(c) for c in p.classes]
    table = [{"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
              "f1": float(f1[i]), "support": int(support[i])} for i in labels]
    matrix = m.confusion_matrix(p.y, p.pred, labels=labels)
    return table, {"labels": names, "matrix": matrix.tolist()}


def _thin(*arrays):
    """At most :data:`CURVE_POINTS` evenly spaced points of each array (ends kept)."""
    import numpy as np

    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int)) if n else np.array([], int)
    return [[round(float(v), 6) for v in np.asarray(a)[keep]] for a in arrays]


def curves(p: Predictions) -> dict[str, Any]:
    """ROC and precision-recall curves of a binary task with scores."""
    import numpy as np
    from sklearn import metrics as m

    if p.task != "binary" or p.scores is None or p.y.min() == p.y.max():
        return {}
    fpr, tpr, roc_t = m.roc_curve(p.y, p.scores)
    precision, recall, pr_t = m.precision_recall_curve(p.y, p.scores)
    roc_t = np.clip(roc_t, 0, 1)  # the first threshold is +inf
    fpr, tpr, roc_t = _thin(fpr, tpr, roc_t)
    precision, recall, pr_t = _thin(precision[:-1], recall[:-1], pr_t)
    return {"roc": {"fpr": fpr, "tpr": tpr, "thresholds": roc_t},
            "pr": {"precision": precision, "recall": recall, "thresholds": pr_t}}


def calibration(p: Predictions, bins: int = 10) -> dict[str, Any]:
    """Reliability of probabilistic outputs: per equal-width bin of the predicted
    probability (the positive class; the top class for multiclass), the mean prediction,
    the observed frequency and the row count; with the Brier score."""
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    if p.scores is None or p.task not in ("binary", "multiclass"):
        return {}
    if p.task == "binary":
        prob, hit, what = p.scores, p.y, "positive class"
    else:
        prob, hit, what = p.scores.max(axis=1), (p.scores.argmax(axis=1) == p.y).astype(int), "top class"
    if len(np.unique(hit)) < 2:
        return {}
    prob_true, prob_pred = calibration_curve(hit, prob, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], prob, side="right"), minlength=bins)
    return {"strategy": "uniform", "bins": bins, "of": what,
            "prob_pred": [round(float(v), 6) for v in prob_pred],
            "prob_true": [round(float(v), 6) for v in prob_true],
            "count": [int(c) for c in count[count > 0]],
            "brier": float(brier_score_loss(hit, prob))}


def confusion_counts(y, scores, thresholds):
    """True/false positives and negatives at each threshold (score >= threshold predicts
    positive), in one sort: arrays of ``len(thresholds)``."""
    import numpy as np

    pos = np.sort(scores[y == 1])
    neg = np.sort(scores[y == 0])
    tp = len(pos) - np.searchsorted(pos, thresholds, side="left")
    fp = len(neg) - np.searchsorted(neg, thresholds, side="left")
    return tp, fp, len(pos) - tp, len(neg) - fp


def sweep(p: Predictions, steps: int = 101) -> list[dict[str, float]]:
    """Threshold metrics at ``steps`` evenly spaced thresholds from 0 to 1 (binary)."""
    import numpy as np

    if p.task != "binary" or p.scores is None:
        return []
    thresholds = np.linspace(0, 1, steps)
    values = rates(*confusion_counts(p.y, p.scores, thresholds))
    rows = []
    for i, t in enumerate(thresholds):
        row = {"threshold": round(float(t), 4)}
        row.update({name: round(float(v[i]), 6) for name, v in values.items() if np.isfinite(v[i])})
        rows.append(row)
    return rows


def best_threshold(y, scores, metric: str) -> float:
    """The threshold maximising ``metric`` (f1, accuracy, balanced_accuracy) over the
    scores' quantiles; ties go to the threshold nearest 0.5."""
    import numpy as np

    candidates = np.unique(np.concatenate([np.linspace(0, 1, 101), np.quantile(scores, np.linspace(0, 1, 1001))]))
    values = np.nan_to_num(rates(*confusion_counts(y, scores, candidates))[metric], nan=-1.0)
    best = np.flatnonzero(values >= values.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def residuals(p: Predictions) -> dict[str, Any]:
    """Regression residuals (prediction - label): bias and quantiles of them and of their size."""
    import numpy as np

    if p.task != "regression":
        return {}
    r = p.pred - p.y
    q = np.quantile(r, QUANTILES)
    qa = np.quantile(np.abs(r), QUANTILES)
    return {"bias": float(r.mean()),
            "quantiles": {f"{k:g}": float(v) for k, v in zip(QUANTILES, q, strict=True)},
            "abs_quantiles": {f"{k:g}": float(v) for k, v in zip(QUANTILES, qa, strict=True)}}


def row_loss(p: Predictions):
    """Each row's loss and its name: log loss with scores, else 0/1 error (classification);
    absolute error (regression)."""
    import numpy as np

    if p.task == "regression":
        return np.abs(p.pred - p.y), "abs_error"
    if p.scores is not None:
        if p.task == "binary":
            s = np.clip(p.scores, EPS, 1 - EPS)
            return -(p.y * np.log(s) + (1 - p.y) * np.log(1 - s)), "log_loss"
        true = p.scores[np.arange(len(p.y)), p.y]
        return -np.log(np.clip(true, EPS, 1)), "log_loss"
    return (p.pred != p.y).astype(float), "error"
