"""Metrics from confusion counts, vectorised over a leading axis: the formulas behind the
threshold metrics of segments, the threshold sweep and every bootstrap resample."""

from __future__ import annotations

from typing import Any


def rates(tp, fp, fn, tn) -> dict[str, Any]:
    """Threshold metrics from confusion counts (arrays); undefined ratios are NaN."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        n = tp + fp + fn + tn
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
        specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)
        return {"accuracy": (tp + tn) / n,
                "balanced_accuracy": (recall + specificity) / 2,
                "precision": precision, "recall": recall,
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan),
                "positive_rate": (tp + fp) / n}



def multiclass_cells(counts, weights=None, extra=None) -> dict[str, Any]:
    import numpy as np

    b, cells = counts.shape
    k = int(round(cells ** 0.5))
    cm = counts.reshape(b, k, k).astype(float)
    tp = np.einsum("bii->bi", cm)
    support, predicted, n = cm.sum(axis=2), cm.sum(axis=1), cm.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        share = support / n[:, None]
        present = support > 0
        seen = present | (predicted > 0)  # macro averages run over the classes among the rows (as sklearn's)
        out = {"accuracy": tp.sum(axis=1) / n,
               "balanced_accuracy": np.where(present, recall, 0).sum(axis=1) / present.sum(axis=1)}
        for name, value in (("f1", f1), ("precision", precision), ("recall", recall)):
            out[f"{name}_macro"] = np.where(seen, value, 0).sum(axis=1) / seen.sum(axis=1)
            out[f"{name}_weighted"] = (value * share).sum(axis=1)
    return out
