"""Label-predicting fields: ``target_leakage`` (a feature's value) and
``missingness_leakage`` (whether a field is missing)."""

from __future__ import annotations

import os
from typing import ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import at_least, within

from .input import LeakageInput
from .scoring import auc_of_sorted, best_separation, encoded_score, prepare_label, score_feature


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


class _Scorer:
    """Scores one column at a time against the label over the live rows ``idx``."""

    def __init__(self, frame, idx, y, held, kind: str, classes) -> None:
        self.frame, self.idx, self.y, self.held, self.kind, self.classes = frame, idx, y, held, kind, classes
        # rows of each class, once, so a column costs two gathers, two sorts and two searches
        self.by_class = [(idx[y == k], idx[y != k]) for k in classes] if kind == "class" else []

    def __call__(self, column: str) -> tuple[str, float]:
        if _is_numeric(self.frame[column]):
            return column, self.numeric(column)
        return column, self.category(column)

    def numeric(self, column: str) -> float:
        """ROC AUC of the value (one-vs-rest), or R² for a numeric label, over all split rows."""
        from .near_join import column_values

        col = self.frame[column]
        if self.kind == "numeric":
            return score_feature(column_values(col, self.idx), self.y, self.kind, self.classes)

        def sorted_values(rows):
            values = column_values(col, rows)  # gathered rows only, sorted in place: no full-column copies
            values.sort()
            return values

        return best_separation(auc_of_sorted(sorted_values(pos), sorted_values(neg)) for pos, neg in self.by_class)

    def category(self, column: str) -> float:
        """The category's label mean, learnt on training rows and scored on held-out rows."""
        import pandas as pd

        if not self.held.any() or self.held.all():
            return float("nan")
        codes, _ = pd.factorize(self.frame[column].iloc[self.idx], use_na_sentinel=False)
        return encoded_score(codes, self.held, self.y, self.kind, self.classes)


@attrs.frozen(kw_only=True)
class TargetLeakage(LeakageCheck):
    """A single feature that predicts the label almost perfectly on its own.

    Numeric features: ROC AUC (max of AUC and 1 - AUC; one-vs-rest for several classes)
    for a class label, R² of a linear fit for a numeric label, over all split rows.
    Other features: their per-category label mean, learnt on the training rows and
    scored on the held-out rows (so ids and other unique keys do not look predictive).
    """

    name: ClassVar[str] = "target_leakage"
    default_action: ClassVar[str] = "warn"
    threshold: float = attrs.field(default=0.98, validator=within(0, 1))
    r2_threshold: float = attrs.field(default=0.95, validator=within(0, 1))
    threads: int = attrs.field(default=0, validator=at_least(0))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.label:
            return []
        kind, yv, live, classes = prepare_label(data)
        if kind == "class" and not classes:
            return []
        idx = np.flatnonzero(live)
        del live
        if len(data.frame) < 2**31 - 1:
            idx = idx.astype(np.int32)  # row positions at half the memory (the scorer keeps them per class)
        y = yv[idx]
        del yv
        scorer = _Scorer(data.frame, idx, y, data.codes[idx] > 0, kind, classes)
        del idx, y
        scores = self._score_all(scorer, data.feature_columns())
        limit = self.r2_threshold if kind == "numeric" else self.threshold
        metric = "r2" if kind == "numeric" else "roc_auc"
        flagged = {c: round(s, 6) for c, s in scores.items() if not np.isnan(s) and s >= limit}
        if not flagged:
            return []
        ranked = sorted(flagged, key=lambda c: -flagged[c])
        return [Finding(
            check=self.name, severity="warning",
            message=f"{len(flagged)} features predict '{data.label}' almost perfectly on their own "
                    f"({metric} >= {limit}): " + ", ".join(f"{c} {flagged[c]:.4f}" for c in ranked),
            evidence={"columns": ranked, "scores": flagged, "metric": metric, "threshold": limit,
                      "label": data.label},
            fix="check how each listed feature is produced: if it is derived from the label or recorded after "
                "the outcome, drop it; if it is genuinely known at prediction time, list it under ignore_columns",
        )]

    def _score_all(self, scorer: _Scorer, columns: list[str]) -> dict[str, float]:
        """``{column: score}``, in ``threads`` threads (default up to 2: each holds a column's
        gathered, sorted values)."""
        workers = self.threads or min(2, os.cpu_count() or 1)
        if workers > 1 and len(columns) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                return dict(pool.map(scorer, columns))
        return dict(map(scorer, columns))


@attrs.frozen(kw_only=True)
class MissingnessLeakage(LeakageCheck):
    """A field whose missingness alone predicts the label: typical of after-the-fact fields
    filled in only once the outcome is known (e.g. a cancellation reason)."""

    name: ClassVar[str] = "missingness_leakage"
    default_action: ClassVar[str] = "warn"
    threshold: float = attrs.field(default=0.9, validator=within(0, 1))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.label:
            return []
        kind, yv, live, classes = prepare_label(data)
        if kind != "numeric" and not classes:
            return []
        idx = np.flatnonzero(live)
        y = yv[idx]
        flagged = {}
        for c in data.feature_columns():
            m = data.frame[c].isna().to_numpy()[idx]
            if m.all() or not m.any():
                continue
            s = score_feature(m.astype("float64"), y, kind, classes)
            if not np.isnan(s) and s >= self.threshold:
                flagged[c] = round(s, 6)
        if not flagged:
            return []
        return [Finding(
            check=self.name, severity="warning",
            message=f"{len(flagged)} fields are missing in a pattern that predicts '{data.label}': "
                    + ", ".join(f"{c} {s:.4f}" for c, s in flagged.items()),
            evidence={"columns": list(flagged), "scores": flagged,
                      "metric": "r2" if kind == "numeric" else "roc_auc", "threshold": self.threshold},
            fix="a field filled in only after the outcome cannot be a feature; drop it, or use its value as "
                "of the prediction time",
        )]
