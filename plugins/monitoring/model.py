"""Model behaviour on a window of predictions: confidence, class rates, performance
estimated before labels arrive (CBPE), and performance on delayed labels."""

from __future__ import annotations

import math
from typing import Any

from tether.errors import ConfigError, DataError

from .params import ModelParams
from .sketches import NumericSketch

CBPE_ASSUMPTIONS = (
    "scores are calibrated probabilities of the positive class (checked on the reference when it has labels)",
    "only the inputs shifted: P(label | inputs) is unchanged (no concept drift)",
    "the decision threshold is the one given (default 0.5)",
)


def estimate_performance(score: NumericSketch, threshold: float = 0.5) -> dict[str, float]:
    """Confidence-based performance estimation (CBPE) for a calibrated binary classifier:
    each row is a positive with probability equal to its score, so expected confusion
    counts, accuracy, precision, recall, F1 and ROC AUC follow from the score sketch."""
    import numpy as np

    v, c = score.values, score.counts.astype(np.float64)
    if not c.sum():
        return {}
    if v.min() < 0 or v.max() > 1:
        raise ConfigError("model.score: the score column holds values outside [0, 1]; CBPE needs probabilities")
    pos, neg = v * c, (1 - v) * c
    yes = v >= threshold
    tp, fp = pos[yes].sum(), neg[yes].sum()
    fn, tn = pos[~yes].sum(), neg[~yes].sum()
    n = c.sum()
    out = {"accuracy": (tp + tn) / n, "positive_rate": float(c[yes].sum() / n),
           "expected_label_rate": float(pos.sum() / n)}
    out["precision"] = tp / (tp + fp) if tp + fp else float("nan")
    out["recall"] = tp / (tp + fn) if tp + fn else float("nan")
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r else float("nan")
    # AUC = P(score of a positive > score of a negative) + 1/2 P(tie), values sorted ascending
    neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    if pos.sum() and neg.sum():
        out["roc_auc"] = float(np.sum(pos * (neg_below + 0.5 * neg)) / (pos.sum() * neg.sum()))
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}


def confidence(score: NumericSketch) -> float | None:
    import numpy as np

    if not score.count:
        return None
    return float(np.average(np.maximum(score.values, 1 - score.values), weights=score.counts))


def class_rates(sketch) -> dict[str, float]:
    cats = sketch.to_categories()
    total = cats.count
    return {k: v / total for k, v in sorted(cats.counts.items())} if total else {}


def labelled_performance(frame, *, label: str, score: str | None, prediction: str | None, threshold: float,
                         segments: tuple[str, ...] = ()) -> dict[str, Any]:
    """Metrics on predictions joined with their delayed labels, overall and per segment."""
    import numpy as np
    from sklearn import metrics as m

    def metrics_of(part) -> dict[str, float]:
        y = part[label].to_numpy()
        pred = part[prediction].to_numpy() if prediction else (part[score].to_numpy() >= threshold).astype(int)
        out = {"rows": float(len(part)), "accuracy": float(m.accuracy_score(y, pred))}
        if set(np.unique(y)) <= {0, 1}:
            out.update(precision=float(m.precision_score(y, pred, zero_division=0)),
                       recall=float(m.recall_score(y, pred, zero_division=0)),
                       f1=float(m.f1_score(y, pred, zero_division=0)), label_rate=float(np.mean(y)))
            if score and len(np.unique(y)) == 2:
                out["roc_auc"] = float(m.roc_auc_score(y, part[score].to_numpy()))
        return out

    result: dict[str, Any] = {"overall": metrics_of(frame), "segments": {}}
    for seg in segments:
        result["segments"][seg] = {str(k): metrics_of(g) for k, g in frame.groupby(seg, observed=True)}
    return result


def model_section(params: ModelParams, reference, current, *, reference_metrics: dict[str, float] | None,
                  current_frame_loader, context) -> dict[str, Any]:
    """The report's ``model`` section (empty when the monitor watches no model)."""
    if not params.enabled:
        return {}
    out: dict[str, Any] = {"score": params.score, "prediction": params.prediction, "threshold": params.threshold}
    for col in (params.score, params.prediction):
        if col and col not in current.columns:
            raise DataError(f"model: column '{col}' is not in the current window "
                            f"(columns: {', '.join(current.columns)})")
    if params.score:
        out.update(_score_section(params, reference, current, reference_metrics))
    if params.prediction:
        out.update(_class_rates_section(params.prediction, reference, current, reference_metrics))
    if params.labels:
        out.update(_labels_section(params, current_frame_loader, context))
    return out


def _score_section(params: ModelParams, reference, current, reference_metrics) -> dict[str, Any]:
    score = params.score
    sk = current.columns[score]
    if not isinstance(sk, NumericSketch):
        raise DataError(f"model.score: column '{score}' is not numeric")
    out: dict[str, Any] = {"confidence_current": confidence(sk)}
    if score in reference.columns and isinstance(reference.columns[score], NumericSketch):
        out["confidence_reference"] = confidence(reference.columns[score])
    out["estimated"] = estimate_performance(sk, params.threshold)
    out["assumptions"] = list(CBPE_ASSUMPTIONS)
    if reference_metrics:
        out["reference_metrics"] = {k: v for k, v in reference_metrics.items() if k in out["estimated"]}
        out["estimated_drop"] = {k: reference_metrics[k] - v for k, v in out["estimated"].items()
                                 if k in reference_metrics and k != "positive_rate"}
    return out


def _class_rates_section(prediction: str, reference, current, reference_metrics) -> dict[str, Any]:
    cur_rates = class_rates(current.columns[prediction])
    out: dict[str, Any] = {"class_rates_current": cur_rates}
    ref_rates = class_rates(reference.columns[prediction]) if prediction in reference.columns else None
    if ref_rates is None and reference_metrics and "positive_rate" in reference_metrics:
        ref_rates = {"1": reference_metrics["positive_rate"], "0": 1 - reference_metrics["positive_rate"]}
    if ref_rates is not None:
        out["class_rates_reference"] = ref_rates
        out["class_rate_change"] = max(abs(cur_rates.get(k, 0.0) - ref_rates.get(k, 0.0))
                                       for k in set(cur_rates) | set(ref_rates))
    return out


def _labels_section(params: ModelParams, current_frame_loader, context) -> dict[str, Any]:
    """Join the delayed labels to the window's predictions; metrics overall and per segment."""
    label, join_on = params.label, list(params.join_on)
    labels = read_frame(params.labels, context)
    preds = current_frame_loader()
    if preds is None:
        raise ConfigError("model.labels: this monitor cannot re-read the current window's rows to join labels")
    for side, frame in (("labels", labels), ("current window", preds)):
        missing = [c for c in join_on if c not in frame.columns]
        if missing:
            raise DataError(f"model.join_on: column '{missing[0]}' is not in the {side}")
    if label not in labels.columns:
        raise DataError(f"model.label: column '{label}' is not in the labels")
    joined = preds.drop(columns=[label], errors="ignore").merge(labels[join_on + [label]], on=join_on, how="inner")
    out: dict[str, Any] = {"labels_joined": len(joined),
                           "labels_coverage": len(joined) / len(preds) if len(preds) else 0.0}
    if len(joined):
        out["labelled"] = labelled_performance(joined, label=label, score=params.score, prediction=params.prediction,
                                               threshold=params.threshold, segments=tuple(params.segments))
    return out


def read_frame(source: str, context):
    """A whole (small) table as a pandas frame: a CSV/Parquet path, or a snapshot (id, id
    prefix, NAME or NAME@VERSION)."""
    from tether.plugins.tables import read_file_table

    path = context.resolve_path(source)
    if path.exists():
        return read_file_table(path).to_pandas()
    if context.workspace is None:
        raise DataError(f"model.labels: file '{source}' not found")
    return context.workspace.read_snapshot(context.workspace.resolve(source, kind="snapshot"))
