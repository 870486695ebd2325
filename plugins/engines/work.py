"""The work on one partition, the same for every engine: a Dask worker and the local engine
call these functions, so both compute the same thing and only the merging differs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .partitions import Partition, read_batches, read_table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

#: columns of the per-row frame the duplicate check works on
HASH_COLUMNS = ("h", "c", "row")


def hash_meta() -> pd.DataFrame:
    """An empty per-row hash frame with its dtypes (``h`` uint64, ``c`` int8, ``row`` int64)."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"h": np.empty(0, np.uint64), "c": np.empty(0, np.int8), "row": np.empty(0, np.int64)})


def hash_partition(part: Partition, schema: pa.Schema, *, split_column: str, ignore_columns: tuple[str, ...],
                   offset: int, object_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per row: its fingerprint over the compared columns, its split code (0 train,
    1 validation, 2 test, -1 excluded; split names read as ``tether leakage`` reads them)
    and its row number in the whole dataset. ``object_columns`` are read as Python objects,
    as a read of the whole dataset holds them (see :func:`whole_frame_objects`)."""
    import numpy as np
    import pandas as pd
    from tether.plugins.rows import row_fingerprints

    from .leakage_work import split_codes

    frame = read_table(part, schema).to_pandas()
    for name in object_columns:
        frame[name] = frame[name].astype(object)
    compared = compared_columns(schema, split_column, ignore_columns)
    codes = split_codes(frame[split_column], column=split_column, offset=offset)
    return pd.DataFrame({"h": row_fingerprints(frame, compared), "c": codes,
                         "row": np.arange(offset, offset + len(frame), dtype=np.int64)})


def whole_frame_objects(layout: Any) -> tuple[str, ...]:
    """The boolean columns a read of the whole dataset holds as objects while a partition
    may hold them as numpy booleans: those converted without a nullable pandas dtype that
    miss a value in some partition. Row fingerprints hash numpy booleans as numbers and
    objects as text, so every partition must read them the way the whole frame does."""
    import numpy as np
    import pyarrow as pa

    empty = layout.schema.empty_table().to_pandas()
    candidates = [f.name for f in layout.schema if pa.types.is_boolean(f.type)
                  and isinstance(empty[f.name].dtype, np.dtype)]
    if not candidates:
        return ()
    missing: set[str] = set()
    for part in layout.partitions:
        table = read_table(part, layout.schema, columns=[c for c in candidates if c not in missing])
        missing.update(name for name in table.column_names if table.column(name).null_count)
        if len(missing) == len(candidates):
            break
    return tuple(c for c in candidates if c in missing)


def compared_columns(schema: pa.Schema, split_column: str, ignore_columns: tuple[str, ...]) -> list[str]:
    """What the duplicate check compares: every column but the split and ignored ones."""
    from tether.errors import DataError
    from tether.plugins.rows import missing_column

    if split_column not in schema.names:
        raise missing_column(split_column, schema.names, what="split column")
    compared = [n for n in schema.names if n != split_column and n not in ignore_columns]
    if not compared:
        raise DataError("no columns left to compare once the split and ignored columns are set aside")
    return compared


def leaking_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose fingerprint is shared with a row of another split;
    complete for every fingerprint whose rows are all in ``frame`` (after a shuffle on it)."""
    from tether.plugins.leakage.duplicates import groups_across_splits

    rows, _groups, _pairs = groups_across_splits(frame["h"].to_numpy(), frame["c"].to_numpy())
    return frame.iloc[rows]


def duplicate_groups(leaking: pd.DataFrame, columns: list[str]) -> Any:
    """:class:`~tether.plugins.leakage.duplicates.DuplicateGroups` of the leaking rows
    (every row of every group that spans splits), in row order."""
    from tether.plugins.leakage.duplicates import DuplicateGroups, groups_across_splits

    leaking = leaking.sort_values("row", kind="stable")
    keys, codes = leaking["h"].to_numpy(), leaking["c"].to_numpy()
    rows, groups, pairs = groups_across_splits(keys, codes)
    return DuplicateGroups(rows=leaking["row"].to_numpy()[rows], keys=keys[rows], codes=codes[rows], groups=groups,
                           pairs=pairs, columns=tuple(columns))


def profile_partition(part: Partition, schema: pa.Schema, builder: dict[str, Any], offset: int = 0) -> Any:
    """A ``DataProfile`` of one partition whose first row is row ``offset`` of the dataset:
    its row sample is keyed by global row numbers, so merged samples equal the local one."""
    from tether.plugins.monitoring.profiles import profile_batches

    return profile_batches(read_batches(part, schema), **{**builder, "row_offset": offset, "workers": 1})


def score_partition(part: Partition, schema: pa.Schema, bundle: Any, *, kept: list[str], version_id: str,
                    target: str, batch_rows: int = 65_536) -> tuple[int, Any]:
    """Score one partition into the Parquet file ``target`` (written whole or not at all);
    return its rows and its ``PredictionSummary``."""
    from tether.plugins.rollout.batch import PredictionSummary, write_predictions

    columns = [c for c in dict.fromkeys([*kept, *bundle.input_names]) if c in schema.names]
    summary = PredictionSummary(bundle)
    stats = write_predictions(read_batches(part, schema, batch_rows=batch_rows, columns=columns), bundle, kept,
                              version_id, Path(target), summary=summary)
    return stats["rows"], summary


#: the column carrying each entity row's number through a partitioned point-in-time join
ENTITY_ROW = "__tether_entity_row"


def entity_partition(part: Partition, schema: pa.Schema, offset: int) -> pd.DataFrame:
    """One partition of an entity table, with each row's number in the whole table."""
    import numpy as np

    frame = read_table(part, schema).to_pandas()
    frame[ENTITY_ROW] = np.arange(offset, offset + len(frame), dtype=np.int64)
    return frame


def frame_partition(part: Partition, schema: pa.Schema) -> pd.DataFrame:
    return read_table(part, schema).to_pandas()


def join_partition(entities: pd.DataFrame, features: pd.DataFrame, target: str, join: dict[str, Any]) -> int:
    """Point-in-time join the entity rows of one entity-key partition with the feature rows
    of the same keys, in entity row order, into the Parquet file ``target``; its rows."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq
    from tether.plugins.features.pit import point_in_time_join

    if entities.empty:
        return 0
    joined = point_in_time_join(entities.sort_values(ENTITY_ROW, kind="stable"), features, **join)
    tmp = f"{target}.tmp-{os.getpid()}"
    pq.write_table(pa.Table.from_pandas(joined, preserve_index=False), tmp, compression="zstd")
    os.replace(tmp, target)
    return len(joined)
