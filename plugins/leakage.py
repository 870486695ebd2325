"""Leakage checks: each a ``LeakageCheck`` backend returning structured findings.

Checks (``policy.leakage`` names, default action in brackets):

* ``exact_duplicates`` [fail]: identical rows in more than one split;
* ``near_duplicates`` [warn]: rows equal within a relative tolerance (text compared
  after case and whitespace normalisation) in more than one split;
* ``entity_overlap`` [fail]: an entity (``entity_column``) in more than one split;
* ``temporal_order`` [fail]: training rows later than the start of validation or test,
  validation rows later than the start of test;
* ``feature_availability`` [fail]: features whose value becomes known after the
  prediction time (from a feature catalogue);
* ``target_leakage`` [warn]: a single feature predicting the label almost perfectly
  (ROC AUC for class labels, R² for numeric ones);
* ``missingness_leakage`` [warn]: a field whose missingness predicts the label (an
  after-the-fact field filled in for one class only);
* ``label_shift`` [warn]: the label's distribution differs between splits, or the
  label has missing values.

A chain's ``policy.leakage`` maps a check name to ``fail``, ``warn`` or ``off``, or to a
mapping with ``action`` plus the check's options (see docs/leakage.md).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import attrs

from tether import hookimpl
from tether.backends import LeakageCheck
from tether.errors import ConfigError, DataError, StageError
from tether.records import Finding

SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
SPLIT_NAMES = ("train", "validation", "test")
ACTIONS = ("fail", "warn", "off")
SEVERITY = {"fail": "error", "warn": "warning"}


class LeakageFailed(StageError):
    """A split has findings its policy marks ``fail``; the manifest is stored regardless."""

    def __init__(self, message: str, *, manifest_id: str | None = None, findings=()) -> None:
        super().__init__(message)
        self.manifest_id = manifest_id
        self.findings = tuple(findings)

    @classmethod
    def from_findings(cls, manifest_id: str, findings) -> LeakageFailed:
        names = ", ".join(f"{f.check} ({f.message})" for f in findings)
        return cls(f"leakage checks failed: {names}; see `tether split show {manifest_id}`",
                   manifest_id=manifest_id, findings=findings)


# --- inputs ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FeatureTiming:
    """When a feature's value becomes known: ``available_at`` column, or event time + lag."""

    name: str
    availability_lag: str | None = None
    available_at: str | None = None


def load_catalog(path) -> tuple[FeatureTiming, ...]:
    """The availability rules of a feature catalogue file (format: docs/features.md)."""
    from tether.plugins.features import load_catalogue

    return tuple(FeatureTiming(name=d.name, availability_lag=d.availability_lag or None,
                               available_at=d.available_at or None) for d in load_catalogue(path))


@attrs.define(kw_only=True)
class LeakageInput:
    """What every check receives: the rows, their split, and the declared columns.

    ``splits`` holds ``train``/``validation``/``test``/``excluded`` per row (excluded rows
    are ignored by every check); ``fingerprints`` are the rows' stable fingerprints.
    """

    frame: Any
    splits: Any
    fingerprints: Any = None
    entity_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    catalog: tuple[FeatureTiming, ...] = ()
    ignore_columns: tuple[str, ...] = ()
    _codes: Any = attrs.field(default=None, init=False, repr=False)
    _compared: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def compared_fingerprints(self):
        """Row fingerprints over :meth:`compared_columns` (computed once, shared by checks)."""
        if self._compared is None:
            from tether.plugins.splits import row_fingerprints

            columns = self.compared_columns()
            if self.fingerprints is not None and len(columns) == len(self.frame.columns):
                self._compared = self.fingerprints
            else:
                self._compared = row_fingerprints(self.frame, columns)
        return self._compared

    @property
    def codes(self):
        """Split per row as 0 (train), 1 (validation), 2 (test) or -1 (excluded)."""
        import numpy as np

        if self._codes is None:
            s = np.asarray(self.splits, dtype=object)
            codes = np.full(len(s), -1, dtype=np.int8)
            for name, code in SPLIT_CODES.items():
                codes[s == name] = code
            self._codes = codes
        return self._codes

    def compared_columns(self) -> list[str]:
        """Columns the duplicate checks compare: all but ``ignore_columns``."""
        return [c for c in self.frame.columns if c not in self.ignore_columns]

    def feature_columns(self) -> list[str]:
        """Candidate features: all columns but the declared and ignored ones."""
        skip = {self.entity_column, self.time_column, self.label, *self.ignore_columns}
        skip |= {t.available_at for t in self.catalog if t.available_at}
        return [c for c in self.frame.columns if c not in skip]


def _cap(values, n: int) -> list:
    return [v.item() if hasattr(v, "item") else v for v in list(values)[:n]]


def _pair_counts(codes_a, codes_b) -> dict[str, int]:
    import numpy as np

    lo, hi = np.minimum(codes_a, codes_b), np.maximum(codes_a, codes_b)
    out = {}
    for a in range(3):
        for b in range(a + 1, 3):
            n = int(np.sum((lo == a) & (hi == b)))
            if n:
                out[f"{SPLIT_NAMES[a]}/{SPLIT_NAMES[b]}"] = n
    return out


def _rows_by_split(rows, codes) -> dict[str, int]:
    import numpy as np

    return {SPLIT_NAMES[c]: int(np.sum(codes[rows] == c)) for c in range(3) if np.any(codes[rows] == c)}


# --- duplicates --------------------------------------------------------------------------


def _groups_across_splits(keys, codes):
    """Rows whose key is shared with a row of another split (excluded rows ignored)."""
    import numpy as np

    live = np.flatnonzero(codes >= 0)
    k, c = keys[live], codes[live]
    order = np.argsort(k, kind="stable")
    k, c, rows = k[order], c[order], live[order]
    if len(k) == 0:
        return rows[:0], 0, {}
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    cmin = np.minimum.reduceat(c, starts)
    cmax = np.maximum.reduceat(c, starts)
    leaking = cmin != cmax
    sizes = np.diff(np.r_[starts, len(k)])
    flag = np.repeat(leaking, sizes)
    pairs = {}
    for a in range(3):
        for b in range(a + 1, 3):
            has_a = np.bitwise_or.reduceat((c == a).astype(np.int8), starts).astype(bool)
            has_b = np.bitwise_or.reduceat((c == b).astype(np.int8), starts).astype(bool)
            n = int(np.sum(has_a & has_b))
            if n:
                pairs[f"{SPLIT_NAMES[a]}/{SPLIT_NAMES[b]}"] = n
    return np.sort(rows[flag]), int(leaking.sum()), pairs


@attrs.frozen(kw_only=True)
class ExactDuplicates(LeakageCheck):
    """Identical rows (every compared column equal) in more than one split."""

    name: ClassVar[str] = "exact_duplicates"
    default_action: ClassVar[str] = "fail"
    sample: int = 50

    def check(self, data: LeakageInput) -> list[Finding]:
        columns = data.compared_columns()
        keys = data.compared_fingerprints
        rows, groups, pairs = _groups_across_splits(keys, data.codes)
        if not groups:
            return []
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(rows)} rows in {groups} groups of identical rows are in more than one split "
                    f"({', '.join(f'{k}: {v}' for k, v in pairs.items())})",
            evidence={"n_rows": len(rows), "n_groups": groups, "split_pairs": pairs,
                      "rows_by_split": _rows_by_split(rows, data.codes), "rows": _cap(rows, self.sample),
                      "fingerprints": [f"{int(k):016x}" for k in sorted(set(keys[rows[:self.sample]].tolist()))],
                      "columns": [str(c) for c in columns]},
            fix="drop duplicate rows before splitting (DataFrame.drop_duplicates), or split by entity so "
                "copies stay in one split; list surrogate ids under ignore_columns so copies are recognised",
        )]


def _normalized_text_codes(values):
    """Integer codes of a text column after lower-casing and collapsing whitespace."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values.astype("object"), use_na_sentinel=True)
    norm = pd.Series(uniques, dtype="object").astype(str).str.lower().str.split().str.join(" ")
    remap, _ = pd.factorize(norm)
    out = np.where(codes >= 0, remap[np.clip(codes, 0, None)] if len(remap) else 0, -1)
    return out.astype(np.int64)


def _mix(h, j: int):
    import numpy as np

    with np.errstate(over="ignore"):
        x = (h + np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        return x ^ (x >> np.uint64(31))


@attrs.frozen(kw_only=True)
class NearDuplicates(LeakageCheck):
    """Rows whose numbers are equal within ``tolerance`` (relative) and whose text is equal
    after case and whitespace normalisation, in more than one split; exact copies are left
    to ``exact_duplicates``.

    Numbers are placed on a coarse logarithmic grid (cells ``coarse`` tolerances wide);
    a value within one tolerance of a cell edge is also looked up in the neighbouring
    cell, so no pair is missed at a boundary (rows with more than ``max_expand`` such
    values are looked up in their own cells only). Candidate pairs sharing a cell key are
    then verified exactly.
    """

    name: ClassVar[str] = "near_duplicates"
    default_action: ClassVar[str] = "warn"
    tolerance: float = 1e-6
    coarse: int = 1000
    max_expand: int = 8
    max_pairs: int = 5_000_000
    sample: int = 50

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not 0 < self.tolerance < 0.5:
            raise ConfigError(f"policy.leakage.near_duplicates.tolerance: {self.tolerance} must be between 0 and 0.5")
        frame, codes = data.frame, data.codes
        columns = data.compared_columns()
        fp_all = np.asarray(data.compared_fingerprints)
        live = np.flatnonzero(codes >= 0)
        if len(live) < 2:
            return []
        # identical rows of one split are one candidate: collapse them to a representative
        order = np.lexsort((codes[live], fp_all[live]))
        f_s, c_s = fp_all[live][order], codes[live][order]
        starts = np.flatnonzero(np.r_[True, (f_s[1:] != f_s[:-1]) | (c_s[1:] != c_s[:-1])])
        weight = np.diff(np.r_[starts, len(order)])
        group_of = np.empty(len(live), dtype=np.int64)
        group_of[order] = np.repeat(np.arange(len(starts)), weight)
        reps = live[order[starts]]
        a, b, numeric, text, truncated = self._candidates(frame, columns, reps, codes)
        if len(a):  # exact copies belong to exact_duplicates
            near = fp_all[reps[a]] != fp_all[reps[b]]
            a, b = a[near], b[near]
        if not len(a):
            return []
        pair_weight = weight[a] * weight[b]
        involved = np.unique(np.concatenate([a, b]))
        rows = np.sort(live[np.isin(group_of, involved)])
        ra, rb = np.minimum(reps[a], reps[b]), np.maximum(reps[a], reps[b])
        first = np.argsort(ra, kind="stable")
        ra, rb, pair_weight = ra[first], rb[first], pair_weight[first]
        pairs: dict[str, int] = {}
        lo, hi = np.minimum(codes[ra], codes[rb]), np.maximum(codes[ra], codes[rb])
        for x in range(3):
            for y in range(x + 1, 3):
                k = int(pair_weight[(lo == x) & (hi == y)].sum())
                if k:
                    pairs[f"{SPLIT_NAMES[x]}/{SPLIT_NAMES[y]}"] = k
        n_pairs = int(pair_weight.sum())
        sample_pairs = [[int(x), SPLIT_NAMES[codes[x]], int(y), SPLIT_NAMES[codes[y]]]
                        for x, y in zip(ra[: self.sample], rb[: self.sample])]
        return [Finding(
            check=self.name, severity="warning",
            message=f"{n_pairs} pairs of near-identical rows ({len(rows)} rows) are in different splits "
                    f"({', '.join(f'{k}: {v}' for k, v in pairs.items())}; relative tolerance {self.tolerance:g})",
            evidence={"n_pairs": n_pairs, "n_rows": int(len(rows)), "split_pairs": pairs,
                      "rows_by_split": _rows_by_split(rows, codes), "rows": _cap(rows, self.sample),
                      "pairs": sample_pairs, "tolerance": self.tolerance, "truncated": truncated,
                      "numeric_columns": [str(c) for c in numeric], "text_columns": [str(c) for c in text]},
            fix="remove near-copies before splitting (e.g. round and deduplicate), or split by the entity the "
                "copies belong to so they stay in one split",
        )]

    def _candidates(self, frame, columns, rows, codes):
        """Verified near pairs ``(a, b)`` (indices into ``rows``, ``a < b``) in different splits."""
        import numpy as np
        import pandas as pd

        numeric, exact = [], []
        for c in columns:
            dtype = frame[c].dtype
            if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                numeric.append(c)
            else:
                exact.append(c)
        n = len(rows)
        step = -np.log1p(-self.tolerance) * 1.000001  # log-distance of a relative difference of `tolerance`
        width = step * self.coarse
        key = np.zeros(n, dtype=np.uint64)
        deltas = []  # (rows needing a neighbour lookup, xor delta of their key)
        values = {}
        for j, c in enumerate(numeric):
            x = frame[c].to_numpy(dtype="float64", na_value=np.nan)[rows]
            values[c] = x
            nz = np.isfinite(x) & (x != 0)
            pos = np.where(nz, (np.log(np.abs(np.where(nz, x, 1.0))) + 0.318309886) / width, 0.0)
            cell = np.floor(pos)
            frac = (pos - cell) * width
            sign = np.where(x < 0, 1, 0)
            special = np.where(np.isnan(x), 3, np.where(x == 0, 2, np.where(np.isinf(x), 4 + sign, 0)))
            base = np.where(special > 0, -special, cell.astype(np.int64) * 2 + sign)
            hb = _mix(pd.util.hash_array(base.astype(np.int64)), j)
            key ^= hb
            for shift, near in ((-1, nz & (frac <= step)), (1, nz & (width - frac <= step))):
                at = np.flatnonzero(near)
                if len(at):
                    alt = (cell[at].astype(np.int64) + shift) * 2 + sign[at]
                    deltas.append((at, hb[at] ^ _mix(pd.util.hash_array(alt), j)))
        text = {}
        for j, c in enumerate(exact, start=len(numeric)):
            col = frame[c]
            if (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)
                    or isinstance(col.dtype, pd.CategoricalDtype)):
                tc = _normalized_text_codes(col)
            else:
                tc = pd.factorize(col, use_na_sentinel=True)[0].astype(np.int64)
            tc = tc[rows]
            text[c] = tc
            key ^= _mix(pd.util.hash_array(tc), j)
        # neighbour lookups: every subset of a row's boundary deltas (capped per row)
        n_near = np.zeros(n, dtype=np.int64)
        for at, _ in deltas:
            n_near[at] += 1
        q_rows, q_keys = np.arange(n), key.copy()
        for at, delta in deltas:
            ok = n_near[at] <= self.max_expand
            at, delta = at[ok], delta[ok]
            if not len(at):
                continue
            d = np.zeros(n, dtype=np.uint64)
            d[at] = delta
            has = np.zeros(n, dtype=bool)
            has[at] = True
            sel = has[q_rows]
            new_rows = q_rows[sel]
            q_rows = np.concatenate([q_rows, new_rows])
            q_keys = np.concatenate([q_keys, q_keys[sel] ^ d[new_rows]])
        # join the lookups to the rows by key
        order = np.argsort(key, kind="stable")
        lo = np.searchsorted(key[order], q_keys, "left")
        counts = np.searchsorted(key[order], q_keys, "right") - lo
        truncated = int(counts.sum()) > self.max_pairs
        if truncated:
            keep = np.cumsum(counts) <= self.max_pairs
            q_rows, lo, counts = q_rows[keep], lo[keep], counts[keep]
        a = np.repeat(q_rows, counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        b = order[np.repeat(lo, counts) + offsets]
        return (*self._verify(a, b, codes[rows], values, text, n), numeric, text, truncated)

    def _verify(self, a, b, split_codes, values, text, n):
        import numpy as np

        diff = split_codes[a] != split_codes[b]
        a, b = a[diff], b[diff]
        if len(a):
            pair_key = np.unique(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
            a, b = pair_key // n, pair_key % n
        ok = np.ones(len(a), dtype=bool)
        for x in values.values():
            xa, xb = x[a], x[b]
            with np.errstate(invalid="ignore"):
                close = (xa == xb) | (np.abs(xa - xb) <= self.tolerance * np.maximum(np.abs(xa), np.abs(xb)))
            ok &= close | (np.isnan(xa) & np.isnan(xb))
        for tc in text.values():
            ok &= tc[a] == tc[b]
        return a[ok], b[ok]


# --- entities and time ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EntityOverlap(LeakageCheck):
    """An entity of ``entity_column`` with rows in more than one split."""

    name: ClassVar[str] = "entity_overlap"
    default_action: ClassVar[str] = "fail"
    sample: int = 50

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np
        import pandas as pd

        column = data.entity_column
        if not column:
            return []
        values = data.frame[column]
        codes = data.codes
        ent, uniques = pd.factorize(values, use_na_sentinel=True)
        live = (codes >= 0) & (ent >= 0)
        e, c = ent[live], codes[live]
        lo = np.full(len(uniques), 9, dtype=np.int8)
        hi = np.full(len(uniques), -1, dtype=np.int8)
        np.minimum.at(lo, e, c)
        np.maximum.at(hi, e, c)
        bad = np.flatnonzero((hi >= 0) & (lo != hi))
        if not len(bad):
            return []
        rows = np.flatnonzero(live & np.isin(ent, bad))
        pairs = {}
        for a in range(3):
            for b in range(a + 1, 3):
                in_a = np.zeros(len(uniques), bool)
                in_b = np.zeros(len(uniques), bool)
                in_a[e[c == a]] = True
                in_b[e[c == b]] = True
                k = int(np.sum(in_a & in_b))
                if k:
                    pairs[f"{SPLIT_NAMES[a]}/{SPLIT_NAMES[b]}"] = k
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(bad)} entities of '{column}' are in more than one split "
                    f"({', '.join(f'{k}: {v}' for k, v in pairs.items())}; {len(rows)} rows)",
            evidence={"column": column, "n_entities": int(len(bad)), "n_rows": int(len(rows)),
                      "split_pairs": pairs, "entities": _cap(uniques[bad[: self.sample]], self.sample),
                      "rows": _cap(rows, self.sample)},
            fix=f"split by entity (plugin: group, stratified_group or time_group with entity_column: {column}) "
                f"so every {column} is in one split",
        )]


@attrs.frozen(kw_only=True)
class TemporalOrder(LeakageCheck):
    """Training rows later than the start of validation or test; validation rows later
    than the start of test (by ``time_column``)."""

    name: ClassVar[str] = "temporal_order"
    default_action: ClassVar[str] = "fail"
    sample: int = 50

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        from tether.plugins.splits import parse_times

        column = data.time_column
        if not column:
            return []
        t = parse_times(data.frame[column], column, where="temporal_order").dt.tz_localize(None).to_numpy()
        codes = data.codes
        starts = {}
        for name in ("validation", "test"):
            sel = codes == SPLIT_CODES[name]
            if sel.any():
                starts[name] = t[sel].min()
        if not starts:
            return []
        late = np.zeros(len(t), dtype=bool)
        by = {}
        first_held = min(starts.values())
        late_train = (codes == 0) & (t > first_held)
        late |= late_train
        if late_train.any():
            by["train"] = int(late_train.sum())
        if "test" in starts:
            late_val = (codes == 1) & (t > starts["test"])
            late |= late_val
            if late_val.any():
                by["validation"] = int(late_val.sum())
        if not late.any():
            return []
        rows = np.flatnonzero(late)
        import pandas as pd

        iso = {k: pd.Timestamp(v).tz_localize("UTC").isoformat() for k, v in starts.items()}
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(rows)} rows are later than the start of a later split "
                    f"({', '.join(f'{k}: {v}' for k, v in by.items())}; validation starts {iso.get('validation', '-')}, "
                    f"test starts {iso.get('test', '-')})",
            evidence={"column": column, "n_rows": int(len(rows)), "late_rows_by_split": by, "starts": iso,
                      "rows": _cap(rows, self.sample)},
            fix=f"split by time (plugin: time or time_group with time_column: {column}) so training ends "
                f"before validation starts; add a gap for features computed over windows",
        )]


@attrs.frozen(kw_only=True)
class FeatureAvailability(LeakageCheck):
    """Features whose value becomes known after the prediction time (``time_column``),
    from the feature catalogue: ``available_at`` column, or event time + ``availability_lag``."""

    name: ClassVar[str] = "feature_availability"
    default_action: ClassVar[str] = "fail"
    sample: int = 20

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        from tether.plugins.splits import parse_duration, parse_times

        if not data.time_column or not data.catalog:
            return []
        frame, live = data.frame, data.codes >= 0
        t = parse_times(frame[data.time_column], data.time_column, where="feature_availability")
        late_cols: dict[str, int] = {}
        samples: dict[str, list] = {}
        for feature in data.catalog:
            if feature.name not in frame.columns:
                continue
            if feature.available_at:
                if feature.available_at not in frame.columns:
                    raise DataError(
                        f"feature_availability: available_at column '{feature.available_at}' of feature "
                        f"'{feature.name}' is not in the data"
                    )
                avail = parse_times(frame[feature.available_at], feature.available_at, where="feature_availability")
            elif feature.availability_lag:
                avail = t + parse_duration(feature.availability_lag)
            else:
                continue
            late = live & frame[feature.name].notna().to_numpy() & (avail > t).to_numpy()
            if late.any():
                rows = np.flatnonzero(late)
                late_cols[feature.name] = int(len(rows))
                samples[feature.name] = _cap(rows, self.sample)
        if not late_cols:
            return []
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(late_cols)} features are known only after the prediction time '{data.time_column}': "
                    + ", ".join(f"{c} ({n} rows)" for c, n in late_cols.items()),
            evidence={"columns": list(late_cols), "n_rows": late_cols, "rows": samples, "time_column": data.time_column},
            fix="compute these features as of the prediction time (point-in-time join), or drop them",
        )]


# --- target ------------------------------------------------------------------------------


def auc_binary(x, positive) -> float:
    """ROC AUC of score ``x`` for boolean ``positive`` (ties count half); NaN rows dropped."""
    import numpy as np

    return _auc_of_sorted(np.sort(x[positive]), np.sort(x[~positive]))


def _auc_of_sorted(pos, neg) -> float:
    """Mann-Whitney AUC from the sorted scores of positives and negatives (NaNs sort last)."""
    import numpy as np

    def drop_nan(a):
        return a[: len(a) - int(np.isnan(a).sum())] if len(a) and np.isnan(a[-1]) else a

    pos, neg = drop_nan(pos), drop_nan(neg)
    if not len(pos) or not len(neg):
        return float("nan")
    lo = np.searchsorted(neg, pos, "left")
    hi = np.searchsorted(neg, pos, "right")
    return float((lo.sum() + 0.5 * (hi - lo).sum()) / (len(pos) * len(neg)))


def _label_kind(y) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(y.dtype) or not pd.api.types.is_numeric_dtype(y.dtype):
        return "class"
    return "class" if y.nunique(dropna=True) <= 2 else "numeric"


def _score_feature(scores, y, kind: str, classes) -> float:
    """max(AUC, 1-AUC) over classes (one-vs-rest) or R² of a linear fit."""
    import numpy as np

    if kind == "numeric":
        ok = ~np.isnan(scores)
        s, t = scores[ok], y[ok]
        if len(s) < 3 or s.std() == 0 or t.std() == 0:
            return float("nan")
        r = np.corrcoef(s, t)[0, 1]
        return float(r * r)
    best = float("nan")
    for k in classes:
        auc = auc_binary(scores, y == k)
        if not np.isnan(auc):
            best = max(auc, 1 - auc) if np.isnan(best) else max(best, auc, 1 - auc)
    return best


def _prepare_label(data: LeakageInput):
    import numpy as np
    import pandas as pd

    y = data.frame[data.label]
    kind = _label_kind(y)
    live = (data.codes >= 0) & y.notna().to_numpy()
    if kind == "numeric":
        yv = y.to_numpy(dtype="float64", na_value=np.nan)
        classes = ()
    else:
        yv, uniques = pd.factorize(y, use_na_sentinel=True)
        classes = range(len(uniques)) if len(uniques) > 2 else (1,) if len(uniques) == 2 else ()
    return kind, yv, live, classes


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
    threshold: float = 0.98
    r2_threshold: float = 0.95
    threads: int = 0

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np
        import pandas as pd

        if not data.label:
            return []
        kind, yv, live, classes = _prepare_label(data)
        if kind == "class" and not classes:
            return []
        frame = data.frame
        idx = np.flatnonzero(live)
        y = yv[idx]
        held = data.codes[idx] > 0
        jobs = []
        for c in data.feature_columns():
            col = frame[c]
            if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
                jobs.append((c, "numeric"))
            else:
                jobs.append((c, "category"))

        # rows of each class, once, so a column costs two gathers, two sorts and two searches
        by_class = [(idx[y == k], idx[y != k]) for k in classes] if kind == "class" else []

        def score(job):
            c, how = job
            if how == "numeric":
                full = frame[c].to_numpy(dtype="float64", na_value=np.nan)
                if kind == "numeric":
                    return c, _score_feature(full[idx], y, kind, classes)
                best = float("nan")
                for pos_rows, neg_rows in by_class:
                    auc = _auc_of_sorted(np.sort(full[pos_rows]), np.sort(full[neg_rows]))
                    if not np.isnan(auc):
                        best = max(auc, 1 - auc) if np.isnan(best) else max(best, auc, 1 - auc)
                return c, best
            if not held.any() or held.all():
                return c, float("nan")
            codes, _ = pd.factorize(frame[c].iloc[idx], use_na_sentinel=False)
            train = ~held
            ncat = int(codes.max()) + 1 if len(codes) else 0
            if kind == "numeric":
                sums = np.bincount(codes[train], weights=y[train], minlength=ncat)
                cnt = np.bincount(codes[train], minlength=ncat)
                enc = np.where(cnt > 0, sums / np.maximum(cnt, 1), y[train].mean())
                pred, truth = enc[codes[held]], y[held]
                sst = ((truth - truth.mean()) ** 2).sum()
                return c, float(1 - ((truth - pred) ** 2).sum() / sst) if sst > 0 else float("nan")
            best = float("nan")
            for k in classes:
                t = (y == k).astype("float64")
                sums = np.bincount(codes[train], weights=t[train], minlength=ncat)
                cnt = np.bincount(codes[train], minlength=ncat)
                enc = np.where(cnt > 0, sums / np.maximum(cnt, 1), t[train].mean())
                auc = auc_binary(enc[codes[held]], t[held] > 0)
                if not np.isnan(auc):
                    best = max(auc, 1 - auc) if np.isnan(best) else max(best, auc, 1 - auc)
            return c, best

        workers = self.threads or min(4, os.cpu_count() or 1)
        if workers > 1 and len(jobs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                scores = dict(pool.map(score, jobs))
        else:
            scores = dict(map(score, jobs))
        limit = self.r2_threshold if kind == "numeric" else self.threshold
        metric = "r2" if kind == "numeric" else "roc_auc"
        flagged = {c: round(s, 6) for c, s in scores.items() if not np.isnan(s) and s >= limit}
        if not flagged:
            return []
        return [Finding(
            check=self.name, severity="warning",
            message=f"{len(flagged)} features predict '{data.label}' almost perfectly on their own ({metric} >= {limit}): "
                    + ", ".join(f"{c} {s:.4f}" for c, s in sorted(flagged.items(), key=lambda kv: -kv[1])),
            evidence={"columns": sorted(flagged, key=lambda c: -flagged[c]), "scores": flagged, "metric": metric,
                      "threshold": limit, "label": data.label},
            fix="check how each listed feature is produced: if it is derived from the label or recorded after "
                "the outcome, drop it; if it is genuinely known at prediction time, list it under ignore_columns",
        )]


@attrs.frozen(kw_only=True)
class MissingnessLeakage(LeakageCheck):
    """A field whose missingness alone predicts the label: typical of after-the-fact fields
    filled in only once the outcome is known (e.g. a cancellation reason)."""

    name: ClassVar[str] = "missingness_leakage"
    default_action: ClassVar[str] = "warn"
    threshold: float = 0.9

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.label:
            return []
        kind, yv, live, classes = _prepare_label(data)
        idx = np.flatnonzero(live)
        y = yv[idx]
        flagged = {}
        for c in data.feature_columns():
            m = data.frame[c].isna().to_numpy()[idx]
            k = int(m.sum())
            if k == 0 or k == len(m):
                continue
            if kind != "numeric" and not classes:
                continue
            s = _score_feature(m.astype("float64"), y, kind, classes)
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


@attrs.frozen(kw_only=True)
class LabelShift(LeakageCheck):
    """The label distribution of validation/test differs from training's by more than
    ``max_distance`` (total variation distance over classes, or over training deciles for
    a numeric label); missing labels are reported too."""

    name: ClassVar[str] = "label_shift"
    default_action: ClassVar[str] = "warn"
    max_distance: float = 0.1

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.label:
            return []
        y = data.frame[data.label]
        codes = data.codes
        out = []
        missing = int((y.isna().to_numpy() & (codes >= 0)).sum())
        if missing:
            out.append(Finding(
                check=self.name, severity="warning",
                message=f"label '{data.label}' is missing in {missing} rows",
                evidence={"n_rows": missing, "rows": _cap(np.flatnonzero(y.isna().to_numpy() & (codes >= 0)), 50)},
                fix="drop unlabelled rows before splitting, or define the label for them",
            ))
        kind = _label_kind(y)
        ok = y.notna().to_numpy()
        if kind == "numeric":
            v = y.to_numpy(dtype="float64", na_value=np.nan)
            train = v[(codes == 0) & ok]
            if len(train) < 10:
                return out
            edges = np.unique(np.quantile(train, np.linspace(0, 1, 11)[1:-1]))
            bins = np.searchsorted(edges, v, "right")
            nbins = len(edges) + 1
        else:
            import pandas as pd

            bins, uniques = pd.factorize(y, use_na_sentinel=True)
            nbins = len(uniques)
        dist = {}
        for c in range(3):
            sel = (codes == c) & ok
            if sel.any():
                dist[c] = np.bincount(bins[sel], minlength=nbins) / sel.sum()
        if 0 not in dist:
            return out
        distances = {SPLIT_NAMES[c]: round(float(0.5 * np.abs(p - dist[0]).sum()), 6) for c, p in dist.items() if c}
        shifted = {k: v for k, v in distances.items() if v > self.max_distance}
        if shifted:
            out.append(Finding(
                check=self.name, severity="warning",
                message=f"label '{data.label}' distribution differs from training in "
                        + ", ".join(f"{k} (distance {v:.3f})" for k, v in shifted.items()),
                evidence={"distance": distances, "max_distance": self.max_distance, "label": data.label},
                fix="if the shift is real (time split), evaluate with it in mind; otherwise stratify the split on the label",
            ))
        return out


BUILTIN_CHECKS = (ExactDuplicates, NearDuplicates, EntityOverlap, TemporalOrder, FeatureAvailability,
                  TargetLeakage, MissingnessLeakage, LabelShift)


# --- running checks by policy --------------------------------------------------------------


def _policy_entry(entry: Any, name: str, where: str) -> tuple[str | None, dict[str, Any]]:
    if entry is None:
        return None, {}
    if isinstance(entry, str):
        action, options = entry, {}
    elif isinstance(entry, dict):
        options = dict(entry)
        action = options.pop("action", None)
    else:
        raise ConfigError(f"{where}.{name}: expected fail, warn, off or a mapping with 'action', got {entry!r}")
    if action is not None and action not in ACTIONS:
        raise ConfigError(f"{where}.{name}: action {action!r} is not one of {', '.join(ACTIONS)}")
    return action, options


def configured_checks(policy: dict[str, Any] | None, *, host=None, where: str = "policy.leakage"):
    """``[(action, check instance)]`` for every check the policy does not turn ``off``.

    Unknown check names, actions and options are :class:`ConfigError` naming the key.
    """
    from tether.errors import did_you_mean

    if policy is not None and not isinstance(policy, dict):
        raise ConfigError(f"{where}: expected a mapping of check name -> fail|warn|off, got {policy!r}")
    policy = dict(policy or {})
    if host is not None:
        names = host.backends.names("leakage")
        get = lambda n: host.backends.get("leakage", n)  # noqa: E731
    else:
        by_name = {cls.name: cls for cls in BUILTIN_CHECKS}
        names = sorted(by_name)
        get = by_name.__getitem__
    for key in policy:
        if key not in names:
            raise ConfigError(
                f"{where}.{key}: unknown leakage check{did_you_mean(str(key), names)} (checks: {', '.join(names)})"
            )
    out = []
    for name in names:
        cls = get(name)
        action, options = _policy_entry(policy.get(name), name, where)
        action = action or getattr(cls, "default_action", "warn")
        if action == "off":
            continue
        if host is not None:
            check = host.backends.create("leakage", name, options, where=f"{where}.{name}")
        else:
            try:
                check = cls(**options)
            except TypeError as exc:
                raise ConfigError(f"{where}.{name}: {exc}") from None
        out.append((action, check))
    return out


def run_checks(data: LeakageInput, policy: dict[str, Any] | None, *, host=None,
               where: str = "policy.leakage") -> list[Finding]:
    """Run every leakage check the policy does not turn ``off``; severities follow the policy."""
    findings: list[Finding] = []
    for action, check in configured_checks(policy, host=host, where=where):
        for finding in check.check(data):
            findings.append(attrs.evolve(finding, severity=SEVERITY[action]))
    return findings


# --- presenting findings -------------------------------------------------------------------


def format_findings(findings) -> str:
    if not findings:
        return "  no leakage findings"
    lines = [f"  findings ({sum(f.severity == 'error' for f in findings)} failing):"]
    order = {"error": 0, "warning": 1}
    for f in sorted(findings, key=lambda f: order.get(f.severity, 2)):
        mark = "FAIL" if f.severity == "error" else "warn" if f.severity == "warning" else "info"
        lines.append(f"  [{mark}] {f.check}: {f.message}")
        ev = f.evidence
        for key in ("entities", "columns", "rows"):
            if key in ev and ev[key]:
                shown = ev[key] if not isinstance(ev[key], dict) else list(ev[key])
                total = ev.get("n_" + key, len(shown))
                total = total if isinstance(total, int) else len(shown)
                more = "" if total <= 10 else f" ... ({total:,} in total)"
                lines.append(f"         {key}: {', '.join(map(str, shown[:10]))}{more}")
                break
        if f.fix:
            lines.append(f"         fix: {f.fix}")
    return "\n".join(lines)


def findings_html(findings, *, title: str, summary: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page of findings (and an optional per-split summary)."""
    import html
    import json

    rows = "".join(
        f"<tr class='{html.escape(f.severity)}'><td>{html.escape(f.severity)}</td><td>{html.escape(f.check)}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(f.fix)}</td>"
        f"<td><pre>{html.escape(json.dumps(f.evidence, indent=1, default=str)[:4000])}</pre></td></tr>"
        for f in findings
    ) or "<tr><td colspan='5'>no leakage findings</td></tr>"
    extra = ""
    if summary:
        extra = f"<h2>Per split</h2><pre>{html.escape(json.dumps(summary, indent=2, default=str))}</pre>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;"
        "padding:4px;vertical-align:top}}table{{border-collapse:collapse}}tr.error{{background:#fdd}}"
        "tr.warning{{background:#ffd}}pre{{margin:0;max-height:12em;overflow:auto}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{extra}<h2>Leakage findings</h2><table><tr><th>severity</th><th>check</th>"
        f"<th>finding</th><th>fix</th><th>evidence</th></tr>{rows}</table></body></html>"
    )


# --- reading a split made elsewhere ----------------------------------------------------------


def read_data_file(path: str):
    """A CSV or Parquet file (or folder of Parquet files) as a DataFrame."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise DataError(f"data file '{path}' not found")
    try:
        if p.is_dir() or p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.dataset as ds

            return ds.dataset(p, format="parquet").to_table().to_pandas()
        if p.suffix.lower() in (".csv", ".txt", ".gz"):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)).to_pandas()
    except Exception as exc:
        raise DataError(f"data file '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    raise DataError(f"data file '{path}': unknown format; use a .csv or .parquet file")


def audit_frame(frame, *, split_column: str, entity_column=None, time_column=None, label=None, catalog=(),
                ignore_columns=(), policy=None, host=None):
    """Run the leakage checks on a frame whose split is a column; returns (findings, summary)."""
    from tether.plugins.splits import normalize_labels, parse_times, summarize_split

    for role, col in (("split", split_column), ("entity", entity_column), ("time", time_column), ("label", label)):
        if col and col not in frame.columns:
            raise DataError(
                f"leakage: {role} column '{col}' is not in the data (columns: {', '.join(map(str, frame.columns))})"
            )
    splits = normalize_labels(frame[split_column], where="leakage", column=split_column)
    data_frame = frame.drop(columns=[split_column])
    if entity_column and data_frame[entity_column].isna().any():
        raise DataError(f"leakage: entity column '{entity_column}' has {int(data_frame[entity_column].isna().sum())} "
                        f"null values; fill or drop them")
    if time_column:
        parse_times(data_frame[time_column], time_column, where="leakage")
    data = LeakageInput(frame=data_frame, splits=splits, entity_column=entity_column, time_column=time_column,
                        label=label, catalog=tuple(catalog), ignore_columns=tuple(ignore_columns))
    findings = run_checks(data, policy, host=host)
    summary = summarize_split(data_frame, splits, entity_column=entity_column, time_column=time_column, label=label)
    return findings, summary


@hookimpl
def tether_add_commands(cli):
    import click

    from tether.cli import emit, host_of, json_option

    @cli.command()
    @click.argument("data")
    @click.option("--split-column", required=True, help="Column holding each row's split (train/validation/test).")
    @click.option("--entity-column", help="Entity column: no entity may be in two splits.")
    @click.option("--time-column", help="Prediction time column: training must end before validation/test start.")
    @click.option("--label", help="Label column: target leakage, missingness and label shift checks.")
    @click.option("--features-from", "catalog", type=click.Path(dir_okay=False),
                  help="Feature catalogue YAML with availability times.")
    @click.option("--ignore-column", "ignore", multiple=True, help="Leave a column out of duplicate checks (repeatable).")
    @click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
                  help="YAML file: a chain (its policy.leakage is used) or a mapping of check -> fail|warn|off.")
    @click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
    @json_option
    @click.pass_context
    def leakage(ctx, data, split_column, entity_column, time_column, label, catalog, ignore, policy_file,
                html_path, json_output):
        """Audit DATA (CSV/Parquet) whose split is a column; exit 1 if a failing finding is present."""
        from pathlib import Path

        policy = _read_policy(policy_file) if policy_file else None
        frame = read_data_file(data)
        findings, summary = audit_frame(
            frame, split_column=split_column, entity_column=entity_column, time_column=time_column, label=label,
            catalog=load_catalog(catalog) if catalog else (), ignore_columns=ignore, policy=policy, host=host_of(ctx),
        )
        failed = any(f.severity == "error" for f in findings)
        if html_path:
            Path(html_path).write_text(findings_html(findings, title=f"Leakage audit of {data}", summary=summary),
                                       encoding="utf-8")
        from tether import serde

        payload = {"data": data, "failed": failed, "summary": summary,
                   "findings": [serde.converter.unstructure(f) for f in findings]}

        def human():
            rows = summary.get("rows", {})
            click.echo(f"{data}: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
            click.echo(format_findings(findings))

        emit(ctx, payload, human)
        if failed:
            failing = [f for f in findings if f.severity == "error"]
            raise LeakageFailed(f"leakage: {len(failing)} failing findings: {', '.join(f.check for f in failing)}",
                                findings=failing)


def _read_policy(path: str) -> dict[str, Any]:
    from tether.config import read_yaml_file

    raw = read_yaml_file(path, "--policy: file") or {}
    if isinstance(raw, dict) and "policy" in raw:
        raw = raw["policy"] or {}
    if isinstance(raw, dict) and "leakage" in raw:
        raw = raw["leakage"] or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--policy: '{path}' must map check names to fail, warn or off")
    return raw


@hookimpl
def tether_add_backends(backends):
    for cls in BUILTIN_CHECKS:
        backends.add(cls)
