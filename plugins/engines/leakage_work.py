"""The work on one partition for the partitioned leakage checks ``entity_overlap`` and
``near_duplicates``, the same for every engine, and the merging of partial results into
what the checks build their findings from.

Both checks read split names as ``tether leakage`` does (aliases, case-insensitive; an
empty or unknown name is a ``DataError`` naming the row in the whole dataset), and number
rows in the whole dataset, files in path order.

``entity_overlap``: per partition the distinct ``(entity, split)`` pairs with their first
row and row count (:func:`entity_pairs`); after grouping them by entity, the entities in
more than one split (:func:`shared_entities`, :func:`entities_per_split`); a second pass
takes the first rows of those entities (:func:`entity_rows`).

``near_duplicates``: per partition every row outside ``excluded`` with its number, split,
fingerprint and compared values in a form that reads the same in every partition (numbers
as float64, text normalised, booleans as objects), once under its own grid key and once
under each neighbouring key it is looked up under (:func:`near_partition`). Rows meeting
under one key are checked by the local machinery (:func:`near_bucket`): a near pair always
meets under the key of one of its rows, since the check joins one row's lookups against
the other's own key; identical rows of one split have the same keys, so they meet whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .partitions import Partition, read_table

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import pyarrow as pa

#: columns of the per-row frames of ``near_duplicates`` (beside the compared columns)
ROW, CODE, FINGERPRINT, KEY = "__tether_row", "__tether_split", "__tether_fingerprint", "__tether_key"
#: bit of each split code (-1 excluded, 0 train, 1 validation, 2 test) in an entity's split mask
_LIVE_BITS = 0b1110
_MISSING_TEXT = 0x6A09E667F3BCC908  # the hash of a missing value in an exactly compared column


def require_columns(schema: pa.Schema, roles: dict[str, str]) -> None:
    """A ``DataError`` naming the first of ``roles`` (``{"entity column": name}``) the data lacks."""
    from tether.plugins.rows import missing_column

    for role, column in roles.items():
        if column not in schema.names:
            raise missing_column(column, schema.names, what=role)


def split_codes(values, *, column: str, offset: int) -> np.ndarray:
    """Split code per row (0 train, 1 validation, 2 test, -1 excluded) of a split column
    whose first row is row ``offset`` of the dataset."""
    import numpy as np
    import pandas as pd
    from tether.errors import DataError
    from tether.plugins.leakage.input import SPLIT_CODES
    from tether.plugins.rows import normalize_labels

    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=True)
    if (codes < 0).any():
        pos = offset + int((codes < 0).argmax())
        raise DataError(f"leakage: split column '{column}' is empty at row {pos}; every row needs a split")
    names = normalize_labels(np.asarray(uniques, dtype=object), where="leakage", column=column)
    table = np.array([SPLIT_CODES.get(n, -1) for n in names], dtype=np.int8)
    return table[codes] if len(codes) else np.zeros(0, dtype=np.int8)


def read_frame(part: Partition, schema: pa.Schema, columns: list[str]) -> pd.DataFrame:
    """Columns of one partition as a DataFrame, booleans as objects (``True``, ``False``,
    ``None``) whether or not this partition has missing values, so every partition's rows
    hash alike."""
    import pyarrow as pa

    frame = read_table(part, schema, columns=list(dict.fromkeys(columns))).to_pandas()
    for name in frame.columns:
        if pa.types.is_boolean(schema.field(name).type) and frame[name].dtype != object:
            frame[name] = frame[name].astype(object)
    return frame


# --- entity_overlap ----------------------------------------------------------------------------


def entity_pairs(part: Partition, schema: pa.Schema, *, split_column: str, entity_column: str,
                 offset: int) -> pd.DataFrame:
    """The distinct ``(entity, code)`` pairs of one partition (rows with a missing entity
    left out), each with its ``first`` row and its number of ``rows``."""
    return _entity_pairs(read_table(part, schema, columns=list(dict.fromkeys([split_column, entity_column]))),
                         split_column, entity_column, offset)


def entity_pairs_meta(schema: pa.Schema, *, split_column: str, entity_column: str) -> pd.DataFrame:
    """An empty frame of :func:`entity_pairs` (its dtypes)."""
    import pyarrow as pa

    fields = [schema.field(c) for c in dict.fromkeys([split_column, entity_column])]
    return _entity_pairs(pa.schema(fields).empty_table(), split_column, entity_column, 0)


def _entity_values(table: pa.Table, split_column: str, entity_column: str, offset: int):
    """(split codes of the rows with an entity, their entities, their row numbers)."""
    import numpy as np
    import pandas as pd

    codes = split_codes(table.column(split_column).to_pandas(), column=split_column, offset=offset)
    entity = table.column(entity_column)
    valid = entity.is_valid().to_numpy(zero_copy_only=False) if entity.null_count else None
    values = (entity.filter(entity.is_valid()) if valid is not None else entity).to_pandas()
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    rows = np.arange(offset, offset + len(codes), dtype=np.int64)
    if valid is not None:
        codes, rows = codes[valid], rows[valid]
    return codes, values.reset_index(drop=True), rows


def _entity_pairs(table: pa.Table, split_column: str, entity_column: str, offset: int) -> pd.DataFrame:
    import pandas as pd

    codes, values, rows = _entity_values(table, split_column, entity_column, offset)
    frame = pd.DataFrame({"entity": values, "code": codes, "row": rows})
    grouped = frame.groupby(["entity", "code"], sort=False, observed=True)["row"]
    return pd.DataFrame({"first": grouped.min(), "rows": grouped.size().astype("int64")}).reset_index()


def entity_nulls(part: Partition, schema: pa.Schema, entity_column: str) -> int:
    """The rows of one partition without an entity."""
    return read_table(part, schema, columns=[entity_column]).column(entity_column).null_count


def floats_when_missing(schema: pa.Schema, column: str) -> bool:
    """Whether a whole-frame read holds ``column`` as floats once it has missing values:
    an integer column read as a numpy dtype (not a nullable one its pandas metadata names)."""
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_integer(schema.field(column).type):
        return False
    dtype = schema.empty_table().to_pandas()[column].dtype
    return isinstance(dtype, np.dtype) and dtype.kind in "iu"


def _per_entity_split(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` of several partitions merged: one row per distinct ``(entity, code)``."""
    grouped = pairs.groupby(["entity", "code"], sort=False, observed=True)
    return grouped.agg(first=("first", "min"), rows=("rows", "sum")).reset_index()


def shared_entities(pairs: pd.DataFrame) -> pd.DataFrame:
    """The entities in more than one split, of ``pairs`` holding every pair of each of its
    entities (all of them, or after a shuffle on the entity): ``entity``, its ``first`` row,
    the ``mask`` of its splits (bit ``code + 1``) and its ``rows`` outside ``excluded``."""
    import numpy as np

    merged = _per_entity_split(pairs)
    code = merged["code"].to_numpy().astype(np.int64)
    merged = merged.assign(mask=np.left_shift(1, code + 1), rows=np.where(code >= 0, merged["rows"], 0))
    per = merged.groupby("entity", sort=False, observed=True).agg(
        first=("first", "min"), mask=("mask", "sum"), rows=("rows", "sum")).reset_index()
    live = per["mask"].to_numpy() & _LIVE_BITS
    several = (live & (live - 1)) != 0  # more than one bit set
    return per[several].reset_index(drop=True)


def entities_per_split(pairs: pd.DataFrame) -> pd.DataFrame:
    """Distinct entities per split ``code`` (-1 excluded) of ``pairs`` (as in :func:`shared_entities`)."""
    import pandas as pd

    counts = _per_entity_split(pairs)["code"].value_counts()
    return pd.DataFrame({"code": counts.index.to_numpy().astype("int8"), "entities": counts.to_numpy(dtype="int64")})


def entity_rows(part: Partition, schema: pa.Schema, *, split_column: str, entity_column: str, offset: int,
                entities: Any, limit: int) -> np.ndarray:
    """The first ``limit`` rows of one partition outside ``excluded`` whose entity is one of ``entities``."""
    table = read_table(part, schema, columns=list(dict.fromkeys([split_column, entity_column])))
    codes, values, rows = _entity_values(table, split_column, entity_column, offset)
    return rows[(codes >= 0) & values.isin(entities).to_numpy()][:limit]


def shared_entities_result(bad: pd.DataFrame, counts: pd.DataFrame, rows: np.ndarray, *, column: str,
                           sample: int, as_float: bool = False) -> Any:
    """The :class:`~tether.plugins.leakage.entities.SharedEntities` of the shared entities
    ``bad`` (all of them), the distinct entities per split ``counts`` and the first rows
    of the shared entities; ``as_float``: a whole-frame read has the entity column as
    floats (see :func:`floats_when_missing`)."""
    import numpy as np
    from tether.plugins.leakage.entities import SharedEntities
    from tether.plugins.leakage.evidence import split_pairs
    from tether.plugins.leakage.input import SPLIT_NAMES

    bad = bad.sort_values("first", kind="stable")
    masks = bad["mask"].to_numpy().astype(np.int64)
    pairs = split_pairs(lambda a, b: np.sum((masks >> (a + 1)) & (masks >> (b + 1)) & 1))
    entities = bad["entity"].iloc[:sample]
    if as_float:
        entities = entities.astype("float64")
    totals = counts.groupby("code")["entities"].sum()
    names = {-1: "excluded", **dict(enumerate(SPLIT_NAMES))}
    by_split = {names[c]: int(totals[c]) for c in (0, 1, 2, -1) if c in totals.index and totals[c]}
    return SharedEntities(column=column, n_entities=len(bad), entities=tuple(entities.to_numpy()),
                          n_rows=int(bad["rows"].sum()), rows=np.asarray(rows, dtype=np.int64)[:sample],
                          pairs=pairs, entities_by_split=by_split)


# --- near_duplicates ---------------------------------------------------------------------------


def near_partition(part: Partition, schema: pa.Schema, *, split_column: str, compared: list[str], offset: int,
                   options: dict[str, Any], keys: bool = True, values: bool = True,
                   select: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of one partition outside ``excluded`` (or those of them whose numbers are in
    the sorted ``select``) for ``near_duplicates``: ``ROW``, ``CODE``; with ``keys`` a row
    once under its own grid key and once under each neighbouring key (``KEY``); with
    ``values`` its ``FINGERPRINT`` and compared values (see :func:`near_rows`)."""
    import numpy as np

    frame = read_frame(part, schema, [split_column, *compared])
    codes = split_codes(frame[split_column], column=split_column, offset=offset)
    live = np.flatnonzero(codes >= 0)
    if select is not None:
        live = live[np.isin(live + offset, select, assume_unique=True)]
    frame = frame.iloc[live].reset_index(drop=True)
    return near_rows(frame, codes[live], live.astype(np.int64) + offset, compared, options, keys=keys,
                     values=values)


def near_meta(schema: pa.Schema, *, compared: list[str], options: dict[str, Any]) -> pd.DataFrame:
    """An empty frame of :func:`near_partition` with keys and values (its dtypes)."""
    import numpy as np
    import pyarrow as pa

    frame = pa.schema([schema.field(c) for c in compared]).empty_table().to_pandas()
    for name in frame.columns:
        if pa.types.is_boolean(schema.field(name).type):
            frame[name] = frame[name].astype(object)
    return near_rows(frame, np.zeros(0, np.int8), np.zeros(0, np.int64), compared, options)


def near_rows(frame: pd.DataFrame, codes: np.ndarray, rows: np.ndarray, compared: list[str],
              options: dict[str, Any], *, keys: bool = True, values: bool = True) -> pd.DataFrame:
    """Rows of ``frame`` (split ``codes``, numbers ``rows``) as :func:`near_partition` gives them.

    Values read the same in every partition: numbers compared within the tolerance as
    float64, text (and everything else but timestamps and durations) as its normalised
    string or ``None``. Keys hash those values, so equal keys mean equal cells and text
    wherever the rows were read.
    """
    import numpy as np
    import pandas as pd
    from tether.plugins.leakage.near_duplicates import NearDuplicates, split_columns
    from tether.plugins.leakage.near_join import expansions
    from tether.plugins.rows import row_fingerprints

    check = NearDuplicates(**options)
    numeric, exact = split_columns(frame, compared)
    take = np.arange(len(frame))
    canonical = {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in numeric}
    key = None
    if keys:
        key, deltas = check.numeric_keys(frame, numeric, take)
    for j, c in enumerate(exact, start=len(numeric)):
        canonical[c], hashes = _exact_column(frame[c])
        if key is not None:
            key ^= _mix(hashes, j)
    if key is not None:
        extra_rows, extra_keys = expansions(key, deltas, check.max_expand)
        take = np.concatenate([take, extra_rows]).astype(np.int64)
        key = np.concatenate([key, extra_keys])
    out = {ROW: np.asarray(rows, dtype=np.int64)[take], CODE: np.asarray(codes, dtype=np.int8)[take]}
    if key is not None:
        out[KEY] = key
    if values:
        out[FINGERPRINT] = row_fingerprints(frame, compared)[take]
        for c in compared:
            column = canonical[c]
            out[c] = column.iloc[take].reset_index(drop=True) if isinstance(column, pd.Series) else column[take]
    return pd.DataFrame(out)


def _mix(hashes, j: int):
    from tether.plugins.leakage.near_join import mix

    return mix(hashes, j)


def _exact_column(column: pd.Series):
    """(the values a partition holds for an exactly compared column, a hash per row that is
    the same for equal values in every partition)."""
    import numpy as np
    import pandas as pd
    from tether.plugins.leakage.near_duplicates import normalize_text

    if hasattr(column.array, "asi8"):  # timestamps, durations: compared by their integers
        return column.reset_index(drop=True), pd.util.hash_array(column.array.asi8.astype(np.int64))
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    norm = normalize_text(uniques)
    text = np.append(norm, None)[codes]  # code -1 (missing) takes the appended None
    hashes = np.append(pd.util.hash_array(norm) if len(norm) else np.zeros(0, np.uint64),
                       np.uint64(_MISSING_TEXT))[codes]
    return text, hashes


def near_bucket(frame: pd.DataFrame, compared: list[str], options: dict[str, Any]) -> Any:
    """The near pairs among the rows of ``frame`` (rows of :func:`near_partition`, a row
    possibly more than once), as a :class:`~tether.plugins.leakage.near_duplicates.NearPairs`
    in the dataset's row numbers."""
    import numpy as np
    from tether.plugins.leakage.near_duplicates import NearDuplicates, NearPairs

    if not len(frame):
        return NearPairs()
    frame = frame.drop_duplicates(ROW).sort_values(ROW, kind="stable").reset_index(drop=True)
    return NearDuplicates(**options).pairs(frame, compared, frame[CODE].to_numpy(dtype=np.int8),
                                           frame[FINGERPRINT].to_numpy(dtype=np.uint64),
                                           numbers=frame[ROW].to_numpy(dtype=np.int64))


def spanning_rows(keys: pd.DataFrame) -> np.ndarray:
    """The rows (sorted, once each) emitted under a key that rows of more than one split are
    emitted under: the only rows that can be in a near pair across splits."""
    import numpy as np

    k = keys[KEY].to_numpy()
    order = np.argsort(k, kind="stable")
    k, c = k[order], keys[CODE].to_numpy()[order]
    if not len(k):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    spans = np.minimum.reduceat(c, starts) != np.maximum.reduceat(c, starts)
    flag = np.repeat(spans, np.diff(np.r_[starts, len(k)]))
    return np.unique(keys[ROW].to_numpy()[order][flag])


def merge_near(found: list, *, numeric: tuple[str, ...], text: tuple[str, ...]) -> Any:
    """One :class:`~tether.plugins.leakage.near_duplicates.NearPairs` of several (the same
    pair or row found in several is kept once)."""
    import numpy as np
    from tether.plugins.leakage.near_duplicates import NearPairs

    truncated = any(f.truncated for f in found)
    found = [f for f in found if len(f.left)]
    if not found:
        return NearPairs(truncated=truncated, numeric_columns=numeric, text_columns=text)

    def joined(name):
        return np.concatenate([getattr(f, name) for f in found])

    left, right = joined("left"), joined("right")
    order = np.lexsort((right, left))
    left, right = left[order], right[order]
    first = np.r_[True, (left[1:] != left[:-1]) | (right[1:] != right[:-1])]
    keep = order[first]
    rows, at = np.unique(joined("rows"), return_index=True)
    return NearPairs(left=left[first], right=right[first], left_codes=joined("left_codes")[keep],
                     right_codes=joined("right_codes")[keep], weights=joined("weights")[keep], rows=rows,
                     row_codes=joined("row_codes")[at], truncated=truncated, numeric_columns=numeric,
                     text_columns=text)


def compared_kinds(schema: pa.Schema, compared: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(columns compared within the tolerance, columns compared exactly), as the check
    classifies them on a frame read from ``schema``."""
    import pyarrow as pa
    from tether.plugins.leakage.near_duplicates import split_columns

    numeric, exact = split_columns(pa.schema([schema.field(c) for c in compared]).empty_table().to_pandas(), compared)
    return tuple(numeric), tuple(exact)
