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

from .partitions import plan
from .work import duplicate_groups, hash_partition, score_partition

OPERATIONS = frozenset({"read", "profile", "exact_duplicates", "score", "point_in_time_join"})


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

        from .work import compared_columns, leaking_rows

        layout = plan(path)
        columns = compared_columns(layout.schema, split_column, ignore_columns)
        frames, offset = [], 0
        for part in layout.partitions:
            frame = hash_partition(part, layout.schema, split_column=split_column, ignore_columns=ignore_columns,
                                   offset=offset)
            offset += len(frame)
            frames.append(frame)
        return duplicate_groups(leaking_rows(pd.concat(frames, ignore_index=True)), columns)

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
        raise DataError(f"output folder '{output}' already exists; scoring writes a new folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)), output
