"""``near_duplicates``: rows equal within a relative tolerance in more than one split.

Numbers are placed on a coarse logarithmic grid and each row's cells (plus its normalised
text) hashed into one key; values near a cell edge are also looked up in the neighbouring
cell, candidate pairs sharing a key are verified exactly. Everything is vectorised.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.errors import ConfigError
from tether.records import Finding

from .evidence import cap, pairs_text, rows_by_split, split_pairs
from .input import SPLIT_NAMES, LeakageInput


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


def _split_columns(frame, columns):
    """(numeric columns compared within the tolerance, other columns compared exactly)."""
    import pandas as pd

    numeric, exact = [], []
    for c in columns:
        dtype = frame[c].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            numeric.append(c)
        else:
            exact.append(c)
    return numeric, exact


def _collapse(fingerprints, codes, live):
    """Identical rows of one split as one candidate: (representative rows, weights, group per live row)."""
    import numpy as np

    order = np.lexsort((codes[live], fingerprints[live]))
    f_s, c_s = fingerprints[live][order], codes[live][order]
    starts = np.flatnonzero(np.r_[True, (f_s[1:] != f_s[:-1]) | (c_s[1:] != c_s[:-1])])
    weight = np.diff(np.r_[starts, len(order)])
    group_of = np.empty(len(live), dtype=np.int64)
    group_of[order] = np.repeat(np.arange(len(starts)), weight)
    return live[order[starts]], weight, group_of


def _text_keys(frame, columns, rows, first: int):
    """Hashed key part and integer codes (normalised text) of the exactly compared columns."""
    import numpy as np
    import pandas as pd

    key = np.zeros(len(rows), dtype=np.uint64)
    text = {}
    for j, c in enumerate(columns, start=first):
        col = frame[c]
        if (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)
                or isinstance(col.dtype, pd.CategoricalDtype)):
            tc = _normalized_text_codes(col)
        else:
            tc = pd.factorize(col, use_na_sentinel=True)[0].astype(np.int64)
        text[c] = tc[rows]
        key ^= _mix(pd.util.hash_array(text[c]), j)
    return key, text


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
        codes = data.codes
        fp_all = np.asarray(data.compared_fingerprints)
        live = np.flatnonzero(codes >= 0)
        if len(live) < 2:
            return []
        reps, weight, group_of = _collapse(fp_all, codes, live)
        a, b, numeric, text, truncated = self._candidates(data.frame, data.compared_columns(), reps, codes)
        if len(a):  # exact copies belong to exact_duplicates
            near = fp_all[reps[a]] != fp_all[reps[b]]
            a, b = a[near], b[near]
        if not len(a):
            return []
        involved = np.unique(np.concatenate([a, b]))
        rows = np.sort(live[np.isin(group_of, involved)])
        ra, rb = np.minimum(reps[a], reps[b]), np.maximum(reps[a], reps[b])
        first = np.argsort(ra, kind="stable")
        evidence = {"truncated": truncated, "numeric_columns": [str(c) for c in numeric],
                    "text_columns": [str(c) for c in text]}
        return [self._finding(ra[first], rb[first], (weight[a] * weight[b])[first], rows, codes, evidence)]

    def _finding(self, ra, rb, pair_weight, rows, codes, evidence) -> Finding:
        """The finding for verified pairs ``(ra, rb)``, each standing for ``pair_weight`` pairs of rows."""
        import numpy as np

        lo, hi = np.minimum(codes[ra], codes[rb]), np.maximum(codes[ra], codes[rb])
        pairs = split_pairs(lambda x, y: pair_weight[(lo == x) & (hi == y)].sum())
        n_pairs = int(pair_weight.sum())
        sample_pairs = [[int(x), SPLIT_NAMES[codes[x]], int(y), SPLIT_NAMES[codes[y]]]
                        for x, y in zip(ra[: self.sample], rb[: self.sample])]
        return Finding(
            check=self.name, severity="warning",
            message=f"{n_pairs} pairs of near-identical rows ({len(rows)} rows) are in different splits "
                    f"({pairs_text(pairs)}; relative tolerance {self.tolerance:g})",
            evidence={"n_pairs": n_pairs, "n_rows": len(rows), "split_pairs": pairs,
                      "rows_by_split": rows_by_split(rows, codes), "rows": cap(rows, self.sample),
                      "pairs": sample_pairs, "tolerance": self.tolerance, **evidence},
            fix="remove near-copies before splitting (e.g. round and deduplicate), or split by the entity the "
                "copies belong to so they stay in one split",
        )

    def _candidates(self, frame, columns, rows, codes):
        """Verified near pairs ``(a, b)`` (indices into ``rows``, ``a < b``) in different splits,
        the numeric and text columns compared, and whether ``max_pairs`` cut the join short."""
        numeric, exact = _split_columns(frame, columns)
        key, deltas, values = self._numeric_keys(frame, numeric, rows)
        text_key, text = _text_keys(frame, exact, rows, len(numeric))
        key ^= text_key
        q_rows, q_keys = self._lookups(key, deltas)
        a, b, truncated = self._join(key, q_rows, q_keys)
        return (*self._verify(a, b, codes[rows], values, text, len(rows)), numeric, text, truncated)

    def _numeric_keys(self, frame, numeric, rows):
        """Per row: the hashed grid cells of its numbers, the key deltas of its neighbouring
        cells (``[(rows near an edge, xor delta)]``) and the values for the exact check."""
        import numpy as np
        import pandas as pd

        step = -np.log1p(-self.tolerance) * 1.000001  # log-distance of a relative difference of `tolerance`
        width = step * self.coarse
        key = np.zeros(len(rows), dtype=np.uint64)
        deltas, values = [], {}
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
        return key, deltas, values

    def _lookups(self, key, deltas):
        """Rows and the keys to look them up under: their own, and every subset of their
        boundary deltas (rows with more than ``max_expand`` deltas: their own key only)."""
        import numpy as np

        n = len(key)
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
        return q_rows, q_keys

    def _join(self, key, q_rows, q_keys):
        """Candidate pairs ``(a, b)``: lookup row ``a`` and row ``b`` whose key matches; at most ``max_pairs``."""
        import numpy as np

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
        return a, b, truncated

    def _verify(self, a, b, split_codes, values, text, n):
        """The candidate pairs in different splits whose values really are near (deduplicated)."""
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
