"""Bootstrap confidence intervals, vectorised over resamples.

A bootstrap resample draws ``n`` rows with replacement; a metric that depends on the rows
only through how many fall in each *cell* (the confusion matrix's cells; the label and the
score's value for AUC) changes between resamples only through those counts, which follow a
multinomial distribution. So instead of resampling rows, each resample draws the cell
counts (``numpy.random.Generator.multinomial``, ``resamples x cells`` numbers) and the
metric is computed from all resamples' counts at once. For these metrics this *is* the
row bootstrap, at a cost independent of the number of rows.

Metrics that are means of a per-row value (Brier, log loss, absolute and squared errors)
are drawn the same way over the value's distinct values when there are few (exact), else
over :data:`MEAN_BINS` equal-count bins of it: the drawn count of each bin times its rows'
mean, plus the spread of the drawn rows' own values within each bin (normal, with the
bin's variance times its drawn count), so heavy tails keep their variance (``binned``).
AUC is exact when the scores take at most :data:`SCORE_BINS` values, else computed over
that many quantile bins of the score (ties within a bin count half). A binned metric's
interval is shifted by the difference between the exact point value and the binned one.
The method of each metric is recorded in the evaluation's ``bootstrap.method``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from .counts import multiclass_cells, rates
from .inputs import Predictions
from .metrics import EPS

MEAN_BINS = 128
SCORE_BINS = 200
#: a segment with at most this many rows is bootstrapped over its distinct values
EXACT_ROWS = 2000


@attrs.frozen(kw_only=True)
class Family:
    """Metrics computed from one set of cells: ``codes`` (the cell of each row), and
    ``compute(counts, weights, extra)`` giving each metric from a ``(resamples, cells)`` count
    matrix (``weights`` are the per-cell values of a mean-type family)."""

    metrics: tuple[str, ...]
    codes: Any
    cells: int
    compute: Callable[..., dict[str, Any]]
    values: Any = None  # per-row values of a mean-type family
    method: str = "exact"
    #: a small segment's exact cell counts (``index -> counts``), when ``codes`` are binned
    small: Callable[..., Any] | None = None


def plan(p: Predictions) -> list[Family]:
    """The cell families of a task, built once for all rows (segments reuse the codes)."""
    import numpy as np

    families: list[Family] = []
    if p.task == "binary":
        families.append(Family(metrics=("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                                        "positive_rate"), codes=p.y * 2 + p.pred, cells=4, compute=_binary_cells))
        if p.scores is not None:
            bins, nb, method = _score_bins(p.scores)
            def exact(index):
                return _exact_auc_counts(p.y[index], p.scores[index])

            families.append(Family(metrics=("roc_auc",), codes=p.y * nb + bins, cells=2 * nb, compute=_auc,
                                   method=method, small=exact))
            s = np.clip(p.scores, EPS, 1 - EPS)
            families.append(_mean_family("brier", (p.scores - p.y) ** 2))
            families.append(_mean_family("log_loss", -(p.y * np.log(s) + (1 - p.y) * np.log(1 - s))))
    elif p.task == "multiclass":
        k = len(p.classes)
        families.append(Family(metrics=("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted",
                                        "precision_macro", "precision_weighted", "recall_macro", "recall_weighted"),
                               codes=p.y * k + p.pred, cells=k * k, compute=multiclass_cells))
        if p.scores is not None:
            true = p.scores[np.arange(p.rows), p.y]
            families.append(_mean_family("log_loss", -np.log(np.clip(true, EPS, 1))))
    elif p.task == "regression":
        r = p.pred - p.y
        families.append(_mean_family("mae", np.abs(r)))
        families.append(_mean_family("rmse", r * r, transform=np.sqrt))
        if (p.y != 0).all():
            families.append(_mean_family("mape", np.abs(r) / np.abs(p.y)))
    return families


def _score_bins(scores):
    import numpy as np

    unique, inverse = np.unique(scores, return_inverse=True)
    if len(unique) <= SCORE_BINS:
        return inverse, len(unique), "exact"
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
    return np.searchsorted(edges, scores, side="right"), len(edges) + 1, f"binned ({SCORE_BINS} score bins)"


def _exact_auc_counts(y, scores):
    """Counts per (label, distinct score) of a few rows: exact AUC cells."""
    import numpy as np

    unique, inverse = np.unique(scores, return_inverse=True)
    return np.bincount(y * len(unique) + inverse, minlength=2 * len(unique))


def _mean_family(metric: str, values, transform=None) -> Family:
    import numpy as np

    edges = np.unique(np.quantile(values, np.linspace(0, 1, MEAN_BINS + 1)[1:-1]))
    codes = np.searchsorted(edges, values, side="right")

    def compute(counts, weights, extra=None):
        sums = counts @ weights if extra is None else counts @ weights + extra
        mean = sums / counts.sum(axis=1)
        return {metric: transform(mean) if transform is not None else mean}

    return Family(metrics=(metric,), codes=codes, cells=len(edges) + 1, compute=compute, values=values,
                  method=f"binned ({MEAN_BINS} bins + within-bin spread)")


def _binary_cells(counts, weights=None, extra=None) -> dict[str, Any]:
    tn, fp, fn, tp = (counts[:, i].astype(float) for i in range(4))
    return rates(tp, fp, fn, tn)


def _auc(counts, weights=None, extra=None) -> dict[str, Any]:
    import numpy as np

    nb = counts.shape[1] // 2
    neg, pos = counts[:, :nb].astype(float), counts[:, nb:].astype(float)
    below = np.cumsum(neg, axis=1) - neg
    pairs = neg.sum(axis=1) * pos.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / pairs
    return {"roc_auc": np.where(pairs > 0, auc, np.nan)}


def intervals(families: list[Family], index, *, resamples: int, confidence: float, rng,
              points: dict[str, float]) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Percentile intervals of every family's metrics over the rows at ``index`` (positions,
    or ``None`` for all rows), and the method of each metric."""
    import numpy as np

    low_q, high_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    out: dict[str, tuple[float, float]] = {}
    methods: dict[str, str] = {}
    for family in families:
        codes = family.codes if index is None else family.codes[index]
        n = len(codes)
        if n == 0:
            continue
        values = None if family.values is None else (family.values if index is None else family.values[index])
        counts, weights, method, spread = _cells(family, codes, values, n, index)
        draws = draw(rng, counts, resamples)
        extra = None
        if spread is not None:  # the drawn rows' own values within each bin: sum ~ N(0, count * var)
            extra = (np.sqrt(draws) * spread * rng.standard_normal(draws.shape)).sum(axis=1)
        exact_point = family.compute(counts[None, :], weights)
        for metric, boot in family.compute(draws, weights, extra).items():
            boot = boot[np.isfinite(boot)]
            if metric not in points or len(boot) < resamples / 2:
                continue  # undefined in too many resamples (a class nearly absent): no interval
            shift = points[metric] - float(exact_point[metric][0]) if method != "exact" else 0.0
            low, high = np.quantile(boot, [low_q, high_q]) + shift
            out[metric] = (round(float(low), 6), round(float(high), 6))
            methods[metric] = method
    return out, methods


def draw(rng, counts, resamples: int):
    """``(resamples, cells)`` bootstrap cell counts: multinomial draws, or (when the cells
    are not many fewer than the rows) rows drawn with replacement and counted per cell; the
    same distribution either way, at the smaller cost."""
    import numpy as np

    n, cells = int(counts.sum()), len(counts)
    if cells * 5 <= n:
        return rng.multinomial(n, counts / n, size=resamples)
    cell_of_row = np.repeat(np.arange(cells), counts)
    picked = cell_of_row[rng.integers(0, n, size=(resamples, n))]
    picked += np.arange(resamples)[:, None] * cells
    return np.bincount(picked.ravel(), minlength=resamples * cells).reshape(resamples, cells)


def _cells(family: Family, codes, values, n: int, index):
    """``(counts, weights, method, spread)`` of one set of rows: cell counts, and for a
    mean-type family each cell's mean and (binned) the standard deviation of its rows'
    values; a small segment is taken over its distinct values, which is exact."""
    import numpy as np

    if values is None:
        if family.small is not None and n <= EXACT_ROWS and family.method != "exact":
            return family.small(slice(None) if index is None else index), None, "exact", None
        return np.bincount(codes, minlength=family.cells), None, family.method, None
    if n <= EXACT_ROWS or family.cells >= n:
        unique, inverse = np.unique(values, return_inverse=True)
        return np.bincount(inverse, minlength=len(unique)), unique, "exact", None
    counts = np.bincount(codes, minlength=family.cells)
    sums = np.bincount(codes, weights=values, minlength=family.cells)
    squares = np.bincount(codes, weights=values * values, minlength=family.cells)
    keep = counts > 0
    counts, means = counts[keep], sums[keep] / counts[keep]
    spread = np.sqrt(np.maximum(squares[keep] / counts - means * means, 0.0))
    return counts, means, family.method, spread
