"""What runs on the Dask workers: thin wrappers around the per-partition work shared with
the local engine (:mod:`tether.plugins.engines.work`), so results match it."""

from __future__ import annotations

from typing import Any

from tether.plugins.engines import work
from tether.plugins.engines.partitions import Partition, read_table


def read_partition(part: Partition, schema) -> Any:
    """One partition as an Arrow table in the dataset's schema."""
    return read_table(part, schema)


def hash_partition(part: Partition, schema, split_column: str, ignore_columns: tuple[str, ...], offset: int,
                   object_columns: tuple[str, ...]):
    return work.hash_partition(part, schema, split_column=split_column, ignore_columns=ignore_columns,
                               offset=offset, object_columns=object_columns)


def leaking_rows(frame):
    return work.leaking_rows(frame)


def profile_partition(part: Partition, schema, builder: dict[str, Any], offset: int) -> Any:
    return work.profile_partition(part, schema, builder, offset)


def merge_profiles(left, right) -> Any:
    from tether.plugins.monitoring.profiles import merge_profiles as merge

    return merge([left, right])


def score_partition(part: Partition, schema, bundle, kept: list[str], version_id: str, target: str):
    return work.score_partition(part, schema, bundle, kept=kept, version_id=version_id, target=target)


def entity_partition(part: Partition, schema, offset: int):
    return work.entity_partition(part, schema, offset)


def frame_partition(part: Partition, schema):
    return work.frame_partition(part, schema)


def join_partition(entities, features, target: str, join: dict[str, Any]) -> int:
    return work.join_partition(entities, features, target, join)
