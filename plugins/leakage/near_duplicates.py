"""``near_duplicates``: rows equal within a tolerance in more than one split.

Two numbers are near when ``|a - b| <= atol + tolerance * max(|a|, |b|)`` (numpy.isclose's
convention, symmetric). Numbers are placed on a coarse grid over ``sign(x) * log1p(|x| / s)``,
``s = atol / tolerance`` (logarithmic for large values, linear around zero; with ``atol: 0``
over ``log |x|``, zero apart) and each row's cells (plus its normalised text) hashed into
one key; values near a cell edge are also looked up in the neighbouring cell, candidate
pairs sharing a key are verified exactly. Everything is vectorised.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import at_least, within

from .evidence import cap, pairs_text, rows_by_split, split_pairs
from .input import SPLIT_NAMES, LeakageInput
from .near_join import candidate_blocks, column_values, expansions, grid_cells, lookup_blocks, mix, neighbour


def _normalized_text_codes(values, rows):
    """Integer codes, at ``rows``, of a text column after lower-casing and collapsing
    whitespace (-1: missing)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # the distinct values only become strings
    codes = codes[rows]
    remap, _ = pd.factorize(normalize_text(uniques))
    return np.append(remap, -1).astype(np.int32)[codes]  # code -1 (missing) takes the appended -1


def normalize_text(values):
    """``values`` (no missing ones) as strings, lower-cased, whitespace runs collapsed to
    one space and stripped: what the check compares text columns by (an object array)."""
    import numpy as np
    import pandas as pd

    norm = pd.Series(np.asarray(values, dtype=object), dtype="object").astype(str)
    return norm.str.lower().str.split().str.join(" ").to_numpy(dtype=object)


def is_text(dtype) -> bool:
    """Whether a column of ``dtype`` is compared as normalised text (strings, objects, categories)."""
    import pandas as pd

    return (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype))


def _xor_hashes(key, values, j: int, rows=None) -> None:
    """``key ^= mix(hash(values[rows]), j)`` (``values`` itself without ``rows``), a block at a
    time (no whole-column temporaries)."""
    import numpy as np
    import pandas as pd

    from .near_join import BLOCK

    for start in range(0, len(key), BLOCK):
        block = values[start:start + BLOCK] if rows is None else values[rows[start:start + BLOCK]]
        key[start:start + BLOCK] ^= mix(pd.util.hash_array(block.astype(np.int64, copy=False)), j)


def split_columns(frame, columns):
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

    f, c = fingerprints[live], codes[live]
    order = np.lexsort((c, f))
    f, c = f[order], c[order]
    new = np.ones(len(f), dtype=bool)
    new[1:] = (f[1:] != f[:-1]) | (c[1:] != c[:-1])
    del f, c
    starts = np.flatnonzero(new)
    del new
    small = np.int32 if len(live) < 2**31 - 1 else np.int64  # group ids and sizes fit, at half the memory
    weight = np.diff(np.r_[starts, len(order)]).astype(small)
    group_of = np.empty(len(live), dtype=small)
    group_of[order] = np.repeat(np.arange(len(starts), dtype=small), weight)
    return live[order[starts]], weight, group_of


def _text_keys(frame, columns, rows, first: int):
    """Hashed key part and integer codes (normalised text) of the exactly compared columns
    (``None`` for a timestamp column: its integers are read from the frame when verifying)."""
    import numpy as np
    import pandas as pd

    key = np.zeros(len(rows), dtype=np.uint64)
    text = {}
    for j, c in enumerate(columns, start=first):
        col = frame[c]
        if is_text(col.dtype):
            text[c] = _normalized_text_codes(col, rows)
        elif hasattr(col.array, "asi8"):  # timestamps, durations: their integers compare as they do
            text[c] = None  # not gathered for every row: 8 bytes a row held through the join
            _xor_hashes(key, col.array.asi8, j, rows)
            continue
        else:
            text[c] = pd.factorize(col, use_na_sentinel=True)[0].astype(np.int32)[rows]
        _xor_hashes(key, text[c], j)
    return key, text


def _no_rows():
    import numpy as np

    return np.zeros(0, dtype=np.int64)


def _no_codes():
    import numpy as np

    return np.zeros(0, dtype=np.int8)


@attrs.frozen(kw_only=True)
class NearPairs:
    """Near pairs in different splits, found by the check or by an engine.

    A pair joins two sets of identical rows (one split each): ``left`` < ``right`` are the
    first rows of the two sets, sorted by ``(left, right)``, ``left_codes``/``right_codes``
    their splits (0 train, 1 validation, 2 test) and ``weights`` the pairs of rows each
    stands for (the product of the sets' sizes). ``rows`` (sorted) are every row of those
    sets, ``row_codes`` their splits; ``truncated`` says whether ``max_pairs`` cut the join
    short; ``numeric_columns``/``text_columns`` are the columns compared within the
    tolerance and exactly.
    """

    left: Any = attrs.field(factory=_no_rows)
    right: Any = attrs.field(factory=_no_rows)
    left_codes: Any = attrs.field(factory=_no_codes)
    right_codes: Any = attrs.field(factory=_no_codes)
    weights: Any = attrs.field(factory=_no_rows)
    rows: Any = attrs.field(factory=_no_rows)
    row_codes: Any = attrs.field(factory=_no_codes)
    truncated: bool = False
    numeric_columns: tuple[str, ...] = ()
    text_columns: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class NearDuplicates(LeakageCheck):
    """Rows whose numbers are near (``|a - b| <= atol + tolerance * max(|a|, |b|)``) and
    whose text is equal after case and whitespace normalisation, in more than one split;
    exact copies are left to ``exact_duplicates``.

    Numbers are placed on a coarse grid (cells ``coarse`` tolerances wide) over
    ``sign(x) * log1p(|x| * tolerance / atol)``: logarithmic for large values, linear around
    zero, so a 0 that became 3e-7 is still near it;
    a value within one tolerance of a cell edge is also looked up in the neighbouring
    cell, so no pair is missed at a boundary (rows with more than ``max_expand`` such
    values are looked up in their own cells only). Candidate pairs sharing a cell key are
    then verified exactly.
    """

    name: ClassVar[str] = "near_duplicates"
    default_action: ClassVar[str] = "warn"
    tolerance: float = attrs.field(default=1e-6, validator=within(0, 0.5, open_low=True, open_high=True))
    atol: float = attrs.field(default=1e-6, validator=at_least(0))
    coarse: int = attrs.field(default=1000, validator=at_least(1))
    max_expand: int = attrs.field(default=8, validator=at_least(0))
    max_pairs: int = attrs.field(default=5_000_000, validator=at_least(1))
    sample: int = attrs.field(default=50, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        return self.findings(self.pairs(data.frame, data.compared_columns(), data.codes,
                                        data.compared_fingerprints))

    def pairs(self, frame, columns, codes, fingerprints, numbers=None) -> NearPairs:
        """The verified near pairs of ``frame``'s rows (split ``codes``, row ``fingerprints``
        over ``columns``); ``numbers`` are the rows' numbers in the whole data (ascending;
        default: their positions), which the result holds."""
        import numpy as np

        fp_all = np.asarray(fingerprints)
        live = np.flatnonzero(codes >= 0)
        if len(live) < 2:
            return NearPairs()
        if len(codes) < 2**31 - 1:
            live = live.astype(np.int32)  # row positions (and the candidates' below) at half the memory
        reps, weight, group_of = _collapse(fp_all, codes, live)
        a, b, numeric, text, truncated = self._candidates(frame, columns, reps, codes)
        if len(a):  # exact copies belong to exact_duplicates
            near = fp_all[reps[a]] != fp_all[reps[b]]
            a, b = a[near], b[near]
        described = {"truncated": truncated, "numeric_columns": tuple(str(c) for c in numeric),
                     "text_columns": tuple(str(c) for c in text)}
        if not len(a):
            return NearPairs(**described)
        involved = np.unique(np.concatenate([a, b]))
        rows = np.sort(live[np.isin(group_of, involved)])
        ra, rb = np.minimum(reps[a], reps[b]), np.maximum(reps[a], reps[b])
        order = np.lexsort((rb, ra))
        ra, rb = ra[order], rb[order]
        pair_weight = (weight[a].astype(np.int64) * weight[b])[order]
        codes_of = (codes[rows], codes[ra], codes[rb])
        if numbers is not None:
            numbers = np.asarray(numbers, dtype=np.int64)
            rows, ra, rb = numbers[rows], numbers[ra], numbers[rb]
        return NearPairs(rows=rows.astype(np.int64), row_codes=codes_of[0], left=ra.astype(np.int64),
                         right=rb.astype(np.int64), left_codes=codes_of[1], right_codes=codes_of[2],
                         weights=pair_weight, **described)

    def findings(self, found: NearPairs) -> list[Finding]:
        """The finding of near pairs found here or by an engine (``Engine.near_duplicates``)."""
        import numpy as np

        if not len(found.left):
            return []
        ra, rb, pair_weight, rows = found.left, found.right, found.weights, found.rows
        lo = np.minimum(found.left_codes, found.right_codes)
        hi = np.maximum(found.left_codes, found.right_codes)
        pairs = split_pairs(lambda x, y: pair_weight[(lo == x) & (hi == y)].sum())
        n_pairs = int(pair_weight.sum())
        sample_pairs = [[int(x), SPLIT_NAMES[cx], int(y), SPLIT_NAMES[cy]]
                        for x, cx, y, cy in zip(ra[: self.sample], found.left_codes[: self.sample],
                                                rb[: self.sample], found.right_codes[: self.sample])]
        return [Finding(
            check=self.name, severity="warning",
            message=f"{n_pairs} pairs of near-identical rows ({len(rows)} rows) are in different splits "
                    f"({pairs_text(pairs)}; tolerance {self.tolerance:g}, atol {self.atol:g})",
            evidence={"n_pairs": n_pairs, "n_rows": len(rows), "split_pairs": pairs,
                      "rows_by_split": rows_by_split(np.arange(len(rows)), found.row_codes),
                      "rows": cap(rows, self.sample), "pairs": sample_pairs, "tolerance": self.tolerance,
                      "atol": self.atol, "truncated": found.truncated,
                      "numeric_columns": list(found.numeric_columns), "text_columns": list(found.text_columns)},
            fix="remove near-copies before splitting (e.g. round and deduplicate), or split by the entity the "
                "copies belong to so they stay in one split",
        )]

    def _candidates(self, frame, columns, rows, codes):
        """Verified near pairs ``(a, b)`` (indices into ``rows``, ``a < b``) in different splits,
        the numeric and text columns compared, and whether ``max_pairs`` cut the join short."""
        import numpy as np

        numeric, exact = split_columns(frame, columns)
        key, deltas = self.numeric_keys(frame, numeric, rows)
        text_key, text = _text_keys(frame, exact, rows, len(numeric))
        key ^= text_key
        del text_key
        extra_rows, extra_keys = expansions(key, deltas, self.max_expand)
        del deltas
        state: dict = {}
        split_codes, n, found = codes[rows], len(rows), []
        for a, b in candidate_blocks(key, lookup_blocks(key, extra_rows, extra_keys), self.max_pairs, state):
            a, b = self._verify(frame, a, b, rows, split_codes, numeric, text)
            found.append(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
        pair_key = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        return pair_key // n, pair_key % n, numeric, text, state["truncated"]

    def numeric_keys(self, frame, numeric, rows):
        """Per row: the hashed grid cells of its numbers, and the key deltas of its neighbouring
        cells (``[(rows near an edge, xor delta)]``, per column the lower edges, then the upper)."""
        import numpy as np
        import pandas as pd

        from .near_join import BLOCK

        # the grid distance of two near values is at most -log(1 - tolerance) (log |x|, atol 0),
        # or tolerance / (1 - tolerance) (log1p(|x| / s), two signs around zero)
        tol = self.tolerance
        step = (tol / (1 - tol) if self.atol > 0 else -np.log1p(-tol)) * 1.000001
        grid = {"atol": self.atol, "tolerance": tol, "width": step * self.coarse, "step": step}
        key = np.zeros(len(rows), dtype=np.uint64)
        deltas = []
        for j, c in enumerate(numeric):
            edges: dict[int, list] = {-1: [], 1: []}
            for start in range(0, len(rows), BLOCK):
                cells, near_lo, near_hi = grid_cells(column_values(frame[c], rows[start:start + BLOCK]), **grid)
                hb = mix(pd.util.hash_array(cells), j)
                key[start:start + len(cells)] ^= hb
                for shift, near in ((-1, near_lo), (1, near_hi)):
                    at = np.flatnonzero(near)
                    alt = mix(pd.util.hash_array(neighbour(cells[at], shift, self.atol)), j)
                    edges[shift].append((at + start, hb[at] ^ alt))
            for shift in (-1, 1):
                at = np.concatenate([e[0] for e in edges[shift]]) if edges[shift] else np.zeros(0, np.int64)
                if len(at):
                    deltas.append((at, np.concatenate([e[1] for e in edges[shift]])))
        return key, deltas

    def _verify(self, frame, a, b, rows, split_codes, numeric, text):
        """The candidate pairs in different splits whose values really are near."""
        import numpy as np

        diff = split_codes[a] != split_codes[b]
        a, b = a[diff], b[diff]
        for c, tc in text.items():
            if tc is None:  # a timestamp column: its integers at the candidates only
                values = frame[c].array.asi8
                same = values[rows[a]] == values[rows[b]]
            else:
                same = tc[a] == tc[b]
            a, b = a[same], b[same]
        for c in numeric:
            if not len(a):
                break
            xa, xb = column_values(frame[c], rows[a]), column_values(frame[c], rows[b])
            with np.errstate(invalid="ignore"):
                bound = self.atol + self.tolerance * np.maximum(np.abs(xa), np.abs(xb))
                close = (xa == xb) | (np.abs(xa - xb) <= bound) | (np.isnan(xa) & np.isnan(xb))
            a, b = a[close], b[close]
        return a, b
