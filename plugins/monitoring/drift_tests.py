"""Drift tests (backend kind ``drift``): each compares two column sketches and reports the
shared :class:`~tether.records.DriftResult`.

========================  =========  ===========  ===========  ===============================
name                      columns    threshold    type         drift when
========================  =========  ===========  ===========  ===============================
``ks``                    numeric    0.05         p_value      p < threshold
``chi2``                  category   0.05         p_value      p < threshold
``psi``                   both       0.2          distance     PSI >= threshold
``wasserstein``           numeric    0.1          distance     W1 / std(reference) >= threshold
``jensenshannon``         both       0.1          distance     JS distance >= threshold
``anderson``              numeric    0.05         p_value      p < threshold
``zscore``                numeric    0.5          std          |mean shift| / std >= threshold
``domain_classifier``     all        0.55         distance     ROC AUC >= threshold
========================  =========  ===========  ===========  ===============================

Defaults (:func:`default_test`): with at most 1,000 reference values a column gets ``ks``
(numeric with more than 5 distinct values) or ``chi2``; with more, ``wasserstein``
(numeric, more than 5 distinct values) or ``jensenshannon``. Large samples make p-values
flag negligible shifts, so large columns are judged by a distance.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
from tether.backends import DriftTest
from tether.errors import ConfigError
from tether.records import DriftResult
from tether.validators import above, at_least, within

from .sketches import CATEGORICAL, NUMERIC, NumericSketch, aligned_counts, ecdf_diff

SMALL_SAMPLE = 1_000  # up to this many reference values, p-value tests are the default
LOW_CARDINALITY = 5  # numeric columns with at most this many distinct values are tested as categories


@attrs.frozen(kw_only=True)
class _Test(DriftTest):
    """Common parameters; ``applies_to`` is ``numeric``, ``categorical`` or ``both``."""

    version: ClassVar[str] = "1"
    threshold_type: ClassVar[str] = "p_value"
    applies_to: ClassVar[str] = "both"
    multivariate: ClassVar[bool] = False
    threshold: float = 0.05

    def __attrs_post_init__(self) -> None:
        field = attrs.fields(type(self)).threshold
        if self.threshold_type == "p_value":
            within(0, 1, open_low=True, open_high=True, what="a p-value threshold must be")(self, field, self.threshold)
        elif self.name == "domain_classifier":
            within(0, 1, open_low=True)(self, field, self.threshold)  # a ROC AUC
        else:
            above(0)(self, field, self.threshold)

    def decide(self, statistic: float, p_value: float | None) -> bool:
        if self.threshold_type == "p_value":
            return bool(p_value < self.threshold)
        return bool(statistic >= self.threshold)

    def result(self, column: str, statistic: float, *, n_reference: int, n_current: int,
               p_value: float | None = None, method: str = "", **details: Any) -> DriftResult:
        statistic = float(statistic)
        p_value = None if p_value is None else float(min(max(p_value, 0.0), 1.0))
        return DriftResult(column=column, test=self.name, test_version=self.version, statistic=statistic,
                           threshold=self.threshold, threshold_type=self.threshold_type,
                           drifted=self.decide(statistic, p_value), n_reference=n_reference,
                           n_current=n_current, p_value=p_value, method=method or self.name, details=details)


@attrs.frozen(kw_only=True)
class KSTest(_Test):
    """Two-sample Kolmogorov–Smirnov; p-value as ``scipy.stats.ks_2samp`` (method auto).

    Exact while both sketches are exact (the default up to 10,000,000 distinct values a
    side). On a compressed sketch the statistic is off by at most ``d_error_bound`` (the
    sketches' ``rank_error`` over their counts) and the p-value by ``p_value_error_bound``
    (the p-values at ``D -/+ d_error_bound``), both reported in ``details``.
    """

    name: ClassVar[str] = "ks"
    applies_to: ClassVar[str] = NUMERIC

    def run(self, column, ref, cur):
        import numpy as np
        from scipy import stats

        n1, n2 = ref.count, cur.count
        if max(n1, n2) <= 10_000 and not (ref.compressed or cur.compressed):
            res = stats.ks_2samp(ref.expand(), cur.expand(), method="exact")
            return self.result(column, res.statistic, p_value=res.pvalue, n_reference=n1, n_current=n2,
                               method="ks_2samp exact")
        _, diff = ecdf_diff(ref, cur)  # exact integer cumulative sums, scaled once
        d = float(np.max(np.abs(diff)))
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = np.round(m * n / (m + n))
        p = float(stats.kstwo.sf(d, en))
        if not (ref.compressed or cur.compressed):
            return self.result(column, d, p_value=p, n_reference=n1, n_current=n2, method="ks_2samp asymptotic")
        bounds: dict[str, Any] = {"d_error_bound": None, "p_value_error_bound": None}
        if ref.rank_error is not None and cur.rank_error is not None:
            err = ref.rank_error / n1 + cur.rank_error / n2
            lo, hi = float(stats.kstwo.sf(max(d - err, 0.0), en)), float(stats.kstwo.sf(min(d + err, 1.0), en))
            bounds = {"d_error_bound": err, "p_value_error_bound": max(lo - p, p - hi)}
        note = "" if bounds["d_error_bound"] is not None else ", error bound unknown: re-profile the reference"
        return self.result(column, d, p_value=p, n_reference=n1, n_current=n2,
                           method=f"ks_2samp asymptotic (sketch{note})", **bounds)


@attrs.frozen(kw_only=True)
class ChiSquaredTest(_Test):
    """Chi-squared test of homogeneity on the 2 x k table of category counts
    (``scipy.stats.chi2_contingency``, Yates' correction only when k = 2)."""

    name: ClassVar[str] = "chi2"
    applies_to: ClassVar[str] = CATEGORICAL

    def run(self, column, ref, cur):
        import numpy as np
        from scipy import stats

        ref, cur = ref.to_categories(), cur.to_categories()
        _, r, c = aligned_counts(ref, cur)
        table = np.vstack((r, c))
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return self.result(column, 0.0, p_value=1.0, n_reference=ref.count, n_current=cur.count,
                               method="chi2_contingency", categories=table.shape[1], note="one category on both sides")
        res = stats.chi2_contingency(table)
        return self.result(column, res.statistic, p_value=res.pvalue, n_reference=ref.count, n_current=cur.count,
                           method="chi2_contingency", dof=int(res.dof))


def _psi(p, q, eps: float):
    import numpy as np

    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


@attrs.frozen(kw_only=True)
class PSITest(_Test):
    """Population stability index over ``bins`` reference-quantile bins (numeric) or the
    categories (categorical); empty bins count as ``eps``. 0.1 is a moderate, 0.2 a major shift."""

    name: ClassVar[str] = "psi"
    threshold_type: ClassVar[str] = "distance"
    threshold: float = 0.2
    bins: int = attrs.field(default=10, validator=at_least(2))
    eps: float = attrs.field(default=1e-4, validator=above(0))

    def run(self, column, ref, cur):
        import numpy as np

        if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch) and ref.distinct > self.bins:
            inner = np.unique(ref.quantiles(np.arange(1, self.bins) / self.bins))
            # bins (-inf, e1], (e1, e2], ..., (e_last, inf): counts from the cumulative sketches
            rc = np.diff(np.concatenate(([0], ref.cdf_at(inner), [ref.count])))
            cc = np.diff(np.concatenate(([0], cur.cdf_at(inner), [cur.count])))
            method = f"psi {inner.size + 1} quantile bins"
        else:
            _, rc, cc = aligned_counts(ref.to_categories(), cur.to_categories())
            method = "psi categories"
        value = _psi(rc / rc.sum(), cc / cc.sum(), self.eps)
        return self.result(column, value, n_reference=ref.count, n_current=cur.count, method=method)


@attrs.frozen(kw_only=True)
class WassersteinTest(_Test):
    """Wasserstein-1 distance (``scipy.stats.wasserstein_distance``) divided by the
    reference's standard deviation (at least ``min_std``), so the threshold is in
    units of the reference's spread."""

    name: ClassVar[str] = "wasserstein"
    threshold_type: ClassVar[str] = "distance"
    applies_to: ClassVar[str] = NUMERIC
    threshold: float = 0.1
    min_std: float = attrs.field(default=0.001, validator=above(0))

    def run(self, column, ref, cur):
        import numpy as np

        grid, diff = ecdf_diff(ref, cur)
        w = float(np.dot(np.abs(diff[:-1]), np.diff(grid))) if grid.size > 1 else 0.0
        norm = max(ref.std() or 0.0, self.min_std)
        return self.result(column, w / norm, n_reference=ref.count, n_current=cur.count,
                           method="wasserstein_distance / std(reference)", wasserstein=w, reference_std=norm)


@attrs.frozen(kw_only=True)
class JensenShannonTest(_Test):
    """Jensen–Shannon distance (``scipy.spatial.distance.jensenshannon``, natural log, so
    0 <= d <= sqrt(ln 2)) between category shares, or between ``bins`` equal-width bins
    over the combined range for numeric columns."""

    name: ClassVar[str] = "jensenshannon"
    threshold_type: ClassVar[str] = "distance"
    threshold: float = 0.1
    bins: int = attrs.field(default=30, validator=at_least(1))

    def run(self, column, ref, cur):
        import numpy as np
        from scipy.spatial import distance

        if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
            lo = min(ref.values[0], cur.values[0])
            hi = max(ref.values[-1], cur.values[-1])
            edges = np.linspace(lo, hi, self.bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            # np.histogram bins: [e_k, e_k+1), the last one closed
            rc = np.diff(np.concatenate((ref.cdf_at(edges[:-1], side="left"), [ref.count])))
            cc = np.diff(np.concatenate((cur.cdf_at(edges[:-1], side="left"), [cur.count])))
            method = f"jensenshannon {edges.size - 1} equal-width bins"
        else:
            _, rc, cc = aligned_counts(ref.to_categories(), cur.to_categories())
            method = "jensenshannon categories"
        value = float(distance.jensenshannon(rc / rc.sum(), cc / cc.sum()))
        return self.result(column, 0.0 if math.isnan(value) else value, n_reference=ref.count,
                           n_current=cur.count, method=method)


@attrs.frozen(kw_only=True)
class AndersonDarlingTest(_Test):
    """k-sample Anderson–Darling (``scipy.stats.anderson_ksamp``, midrank). scipy caps the
    p-value to [0.001, 0.25]. Sides larger than ``max_sample`` values are replaced by an
    evenly spaced quantile sample of that size (reported in ``method``)."""

    name: ClassVar[str] = "anderson"
    applies_to: ClassVar[str] = NUMERIC
    max_sample: int = attrs.field(default=50_000, validator=at_least(2))

    def run(self, column, ref, cur):
        import warnings

        from scipy import stats

        a, b = ref.expand(self.max_sample), cur.expand(self.max_sample)
        sampled = ref.count > self.max_sample or cur.count > self.max_sample
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "p-value capped" warnings; the cap is documented
            res = stats.anderson_ksamp([a, b])
        return self.result(column, res.statistic, p_value=res.pvalue, n_reference=ref.count, n_current=cur.count,
                           method="anderson_ksamp" + (f" (quantile sample of {self.max_sample})" if sampled else ""))


@attrs.frozen(kw_only=True)
class ZScoreTest(_Test):
    """Shift of the mean in reference standard deviations."""

    name: ClassVar[str] = "zscore"
    threshold_type: ClassVar[str] = "std"
    applies_to: ClassVar[str] = NUMERIC
    threshold: float = 0.5

    def run(self, column, ref, cur):
        shift = abs((cur.mean() or 0.0) - (ref.mean() or 0.0)) / max(ref.std() or 0.0, 1e-12)
        return self.result(column, min(shift, 1e12), n_reference=ref.count, n_current=cur.count,
                           method="|mean(current) - mean(reference)| / std(reference)")


@attrs.frozen(kw_only=True)
class DomainClassifierTest(_Test):
    """Multivariate: ROC AUC of a gradient-boosted classifier telling reference rows from
    current rows (``cv``-fold cross-validated, on row samples of at most ``sample_rows``
    per side). 0.5 means indistinguishable."""

    name: ClassVar[str] = "domain_classifier"
    threshold_type: ClassVar[str] = "distance"
    applies_to: ClassVar[str] = "both"
    multivariate: ClassVar[bool] = True
    threshold: float = 0.55
    sample_rows: int = attrs.field(default=5_000, validator=at_least(2))
    cv: int = attrs.field(default=3, validator=at_least(2))
    seed: int = 0

    def run_frames(self, reference, current, columns) -> DriftResult:
        import numpy as np
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import cross_val_predict

        rng = np.random.default_rng(self.seed)
        ref = reference.sample(min(len(reference), self.sample_rows), random_state=int(rng.integers(1 << 31)))
        cur = current.sample(min(len(current), self.sample_rows), random_state=int(rng.integers(1 << 31)))
        frame = pd.concat([ref[columns], cur[columns]], ignore_index=True)
        y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
        X = pd.DataFrame(index=frame.index)
        categorical = []
        for col in columns:
            s = frame[col]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                X[col] = s.astype("float64")
            else:
                X[col] = s.astype("string").astype("category").cat.codes.replace(-1, np.nan).astype("float64")
                categorical.append(len(X.columns) - 1)
        model = HistGradientBoostingClassifier(max_iter=100, categorical_features=categorical or None,
                                               random_state=self.seed)
        folds = max(2, min(self.cv, len(ref), len(cur)))
        proba = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]
        auc = float(roc_auc_score(y, proba))
        return self.result("*", auc, n_reference=len(ref), n_current=len(cur),
                           method=f"HistGradientBoosting {folds}-fold ROC AUC", columns=list(columns))


TESTS: tuple[type, ...] = (KSTest, ChiSquaredTest, PSITest, WassersteinTest, JensenShannonTest,
                           AndersonDarlingTest, ZScoreTest, DomainClassifierTest)


def default_test(kind: str, n_reference: int, distinct: int) -> str:
    """The test a column gets unless configured: see the module docstring."""
    numeric = kind == NUMERIC and distinct > LOW_CARDINALITY
    if n_reference <= SMALL_SAMPLE:
        return "ks" if numeric else "chi2"
    return "wasserstein" if numeric else "jensenshannon"


def run_test(test, column: str, ref, cur) -> DriftResult:
    """Run ``test`` on two sketches, converting low-cardinality numeric sketches to categories
    for category tests."""
    if test.applies_to == CATEGORICAL or not (isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch)):
        if test.applies_to == NUMERIC:
            raise ConfigError(f"drift test '{test.name}' needs a numeric column; '{column}' is categorical")
        ref, cur = ref.to_categories(), cur.to_categories()
    return test.run(column, ref, cur)

