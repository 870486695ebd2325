"""The ``local`` engine: partitioned work in this process, one partition after another,
with the same code paths the stages use without an engine (pandas/pyarrow)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import Engine
from tether.errors import DataError

from .partitions import offsets_of, partition_rows, plan
from .work import duplicate_groups, hash_partition, score_partition

OPERATIONS = frozenset({"read", "profile", "exact_duplicates", "entity_overlap", "near_duplicates", "score",
                        "point_in_time_join"})


@attrs.frozen(kw_only=True)
class LocalEngine(Engine):
    """Runs partitioned work in this process (the default engine; it takes no parameters)."""

    name: ClassVar[str] = "local"
    operations: ClassVar[frozenset[str]] = OPERATIONS

    def record_batches(self, path, *, batch_rows: int) -> Iterator[Any]:
        from tether.plugins.tables import read_parquet_batches

        return read_parquet_batches(Path(path), batch_rows=batch_rows)

    def profile(self, path, **builder: Any) -> Any:
        from tether.plugins.monitoring.profiles import profile_batches

        return profile_batches(self.record_batches(path, batch_rows=128 * 1024), **builder)

    def exact_duplicates(self, path, *, split_column: str, ignore_columns: tuple[str, ...] = ()) -> Any:
        import pandas as pd

        from .work import compared_columns, leaking_rows, whole_frame_objects

        layout = plan(path)
        columns = compared_columns(layout.schema, split_column, ignore_columns)
        objects = whole_frame_objects(layout)
        frames, offset = [], 0
        for part in layout.partitions:
            frame = hash_partition(part, layout.schema, split_column=split_column, ignore_columns=ignore_columns,
                                   offset=offset, object_columns=objects)
            offset += len(frame)
            frames.append(frame)
        return duplicate_groups(leaking_rows(pd.concat(frames, ignore_index=True)), columns)

    def entity_overlap(self, path, *, split_column: str, entity_column: str, sample: int = 50) -> Any:
        import pandas as pd
        import tether.plugins.engines.leakage_work as lw

        layout = plan(path)
        lw.require_columns(layout.schema, {"split column": split_column, "entity column": entity_column})
        parts, roles = layout.partitions, {"split_column": split_column, "entity_column": entity_column}
        offsets = offsets_of([partition_rows(p) for p in parts])
        pairs = pd.concat([lw.entity_pairs_meta(layout.schema, **roles),
                           *(lw.entity_pairs(p, layout.schema, offset=o, **roles) for p, o in zip(parts, offsets))],
                          ignore_index=True)
        bad = lw.shared_entities(pairs)
        counts = lw.entities_per_split(pairs)
        del pairs
        rows: list = []
        for part, offset in zip(parts, offsets):  # the first rows of the shared entities, in row order
            if len(rows) >= sample or not len(bad):
                break
            rows.extend(lw.entity_rows(part, layout.schema, offset=offset, entities=bad["entity"],
                                       limit=sample - len(rows), **roles).tolist())
        as_float = lw.floats_when_missing(layout.schema, entity_column) and any(
            lw.entity_nulls(p, layout.schema, entity_column) for p in parts)
        return lw.shared_entities_result(bad, counts, rows, column=entity_column, sample=sample, as_float=as_float)

    def near_duplicates(self, path, *, split_column: str, ignore_columns: tuple[str, ...] = (),
                        **options: Any) -> Any:
        import numpy as np
        import pandas as pd
        import tether.plugins.engines.leakage_work as lw
        from tether.plugins.leakage.near_duplicates import NearDuplicates

        from .work import compared_columns

        NearDuplicates(**options)  # the options' own validation
        layout = plan(path)
        compared = compared_columns(layout.schema, split_column, ignore_columns)
        parts, sizes = layout.partitions, [partition_rows(p) for p in layout.partitions]
        offsets = offsets_of(sizes)
        each = {"split_column": split_column, "compared": compared, "options": options}
        # pass 1: the grid keys only; the rows under a key shared by several splits are the candidates
        keys = [lw.near_partition(p, layout.schema, offset=o, values=False, **each) for p, o in zip(parts, offsets)]
        select = lw.spanning_rows(pd.concat(keys, ignore_index=True)) if keys else np.zeros(0, np.int64)
        del keys
        # pass 2: the candidates' values, checked together
        pieces = [lw.near_meta(layout.schema, compared=compared, options=options).drop(columns=lw.KEY)]
        for part, offset, size in zip(parts, offsets, sizes):
            here = select[(select >= offset) & (select < offset + size)]
            if len(here):
                pieces.append(lw.near_partition(part, layout.schema, offset=offset, keys=False, select=here, **each))
        found = lw.near_bucket(pd.concat(pieces, ignore_index=True), compared, options)
        numeric, text = lw.compared_kinds(layout.schema, compared)
        return lw.merge_near([found], numeric=numeric, text=text)

    def score(self, path, bundle: Any, *, kept: list[str], version_id: str, output) -> dict[str, Any]:
        from tether.plugins.rollout.batch import PredictionSummary

        layout = plan(path)
        staging, output = staging_folder(output)
        summary, rows, parts = PredictionSummary(bundle), 0, []
        try:
            for part in layout.partitions:
                target = staging / part_name(part.index)
                n, part_summary = score_partition(part, layout.schema, bundle, kept=kept, version_id=version_id,
                                                  target=str(target))
                rows += n
                summary.merge(part_summary)
                parts.append(output / target.name)
            os.replace(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {"rows": rows, "parts": [str(p) for p in parts], **summary.result()}

    def point_in_time_join(self, entities, features, *, output, **join: Any) -> dict[str, Any]:
        import pandas as pd

        from .work import ENTITY_ROW, entity_partition, frame_partition, join_partition

        left, right = plan(entities), plan(features)
        frames, offset = [], 0
        for part in left.partitions:
            frames.append(entity_partition(part, left.schema, offset))
            offset += len(frames[-1])
        feature_frame = pd.concat([frame_partition(p, right.schema) for p in right.partitions], ignore_index=True)
        staging, output = staging_folder(output)
        try:
            entity_frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({ENTITY_ROW: []})
            rows = join_partition(entity_frame, feature_frame, str(staging / part_name(0)), join)
            os.replace(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {"rows": rows, "parts": [str(output / part_name(0))] if rows else []}

    def describe(self) -> str:
        return "local (this process)"


def part_name(index: int) -> str:
    """The file name of the ``index``-th output part (zero-padded, so names sort in row order)."""
    return f"part-{index:05d}.parquet"


def staging_folder(output) -> tuple[Path, Path]:
    """A fresh temporary folder beside ``output`` (renamed to it when every part is written)."""
    output = Path(output)
    if output.exists():
        raise DataError(f"output folder '{output}' already exists; name a new folder (nothing is overwritten)")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)), output
