"""``DaskEngine``: tether's partitioned operations on a Dask cluster.

Partitions are the files of a Parquet folder, in path order (see
:mod:`tether.plugins.engines.partitions`); the work on each one is the local engine's
(:mod:`tether.plugins.engines.work`), run on workers. How results are merged:

- ``read`` (snapshots): workers read and conform partitions; the client receives them in
  order, at most ``in_flight`` at a time, and hashes them into one fingerprint (the
  fingerprint is a streaming hash, so the order must be the data's order);
- ``profile`` (drift, data health): one profile per partition, merged pairwise on workers;
- ``exact_duplicates``: row fingerprints per partition, a shuffle on the fingerprint, and
  the groups spanning splits found per shuffled partition;
- ``entity_overlap``, ``near_duplicates``: see :mod:`.leakage` (a shuffle on the entity, on
  the near-duplicate grid key);
- ``score``: each partition scored on a worker into its own Parquet part.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import attrs
from tether.backends import Engine
from tether.errors import ConfigError, EngineError
from tether.plugins.engines.local import OPERATIONS, part_name, staging_folder
from tether.plugins.engines.partitions import plan
from tether.plugins.progress import Progress
from tether.validators import at_least

from .errors import mapped_errors
from .tasks import (
    entity_partition,
    frame_partition,
    hash_partition,
    join_partition,
    leaking_rows,
    merge_profiles,
    profile_partition,
    read_partition,
    score_partition,
)

_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


def _check_address(inst, attribute, value) -> None:
    if value is not None and not value.startswith(_SCHEMES):
        raise ConfigError(f"expected a scheduler address such as tcp://host:8786, got {value!r}",
                          key=attribute.name)


def _check_memory(inst, attribute, value) -> None:
    if value is None:
        return
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise ConfigError(f"expected a size such as 2GiB or 512MB, got {value!r}", key=attribute.name) from None


@attrs.frozen(kw_only=True)
class DaskEngine(Engine):
    """Runs partitioned work on a Dask cluster: the scheduler at ``address``, or a
    ``LocalCluster`` of ``workers`` processes (``threads_per_worker`` threads each, at most
    ``memory_limit`` each) started on first use and closed with the run. ``in_flight``
    bounds the partitions a snapshot holds at once; a log line is written every
    ``progress_every`` partitions, and a progress bar is drawn when stderr is a terminal."""

    name: ClassVar[str] = "dask"
    requires: ClassVar[tuple[str, ...]] = ("dask", "distributed")
    extra: ClassVar[str | None] = "dask"
    operations: ClassVar[frozenset[str]] = OPERATIONS | {"write_parts"}
    address: str | None = attrs.field(default=None, validator=_check_address)
    workers: int | None = attrs.field(default=None, validator=attrs.validators.optional(at_least(1)))
    threads_per_worker: int = attrs.field(default=1, validator=at_least(1))
    memory_limit: str | None = attrs.field(default=None, validator=_check_memory)
    in_flight: int = attrs.field(default=4, validator=at_least(1))
    progress_every: int = attrs.field(default=10, validator=at_least(1))
    timeout: int = attrs.field(default=30, validator=at_least(1))
    _state: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.address is not None and (self.workers is not None or self.memory_limit is not None):
            key = "workers" if self.workers is not None else "memory_limit"
            raise ConfigError("give either address (an existing cluster) or workers/memory_limit "
                              "(a local cluster), not both", key=key)

    # -- cluster -----------------------------------------------------------------------------

    def client(self):
        """The ``distributed.Client`` (connecting, or starting the local cluster, on first use)."""
        if "client" in self._state:
            return self._state["client"]
        from distributed import Client, LocalCluster

        try:
            if self.address is not None:
                client = Client(self.address, timeout=self.timeout, set_as_default=False)
            else:
                cluster = LocalCluster(n_workers=self.workers or 2, threads_per_worker=self.threads_per_worker,
                                       memory_limit=self.memory_limit or "auto", processes=True,
                                       dashboard_address=":0")
                self._state["cluster"] = cluster
                client = Client(cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"dask engine: cannot reach the scheduler at {self.describe()}: {exc}") from None
        self._state["client"] = client
        return client

    def close(self) -> None:
        client, cluster = self._state.pop("client", None), self._state.pop("cluster", None)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def describe(self) -> str:
        if self.address is not None:
            return self.address
        return f"local cluster ({self.workers or 2} workers, memory limit {self.memory_limit or 'auto'})"

    # -- operations ----------------------------------------------------------------------------

    def record_batches(self, path, *, batch_rows: int) -> Iterator[Any]:
        layout = plan(path)
        schema = layout.schema
        for table in self._ordered("read", read_partition, layout.partitions, schema):
            yield from table.to_batches(max_chunksize=batch_rows)

    def write_parts(self, path, *, schema, part_path) -> Iterator[Any]:
        from .snapshots import write_parts  # snapshot parts encoded by the workers

        return write_parts(self, path, schema=schema, part_path=part_path)

    def profile(self, path, **builder: Any) -> Any:
        from tether.plugins.monitoring.profiles import ProfileBuilder

        layout = plan(path)
        client = self.client()
        with mapped_errors("profile"):
            offsets = [0] * len(layout.partitions)
            if ProfileBuilder(**builder).sample_rows:  # the row sample is keyed by global row numbers
                offsets = self.row_offsets(layout.partitions)
            token = os.urandom(4).hex()
            futures = [client.submit(profile_partition, part, layout.schema, builder, offset,
                                     key=f"tether-profile-{part.index:05d}-{token}")
                       for part, offset in zip(layout.partitions, offsets)]
            with self._watch("profile", futures):
                while len(futures) > 1:  # a tree of pairwise merges, on the workers
                    pairs = [futures[i:i + 2] for i in range(0, len(futures), 2)]
                    futures = [client.submit(merge_profiles, *pair, pure=False) if len(pair) == 2 else pair[0]
                               for pair in pairs]
                profile = futures[0].result() if futures else None
        if profile is None:
            return ProfileBuilder(**builder).finish()
        profile.time_column = builder.get("time_column")
        return profile

    def exact_duplicates(self, path, *, split_column: str, ignore_columns: tuple[str, ...] = ()) -> Any:
        import dask.dataframe as dd
        from dask import delayed
        from tether.plugins.engines.work import compared_columns, duplicate_groups, hash_meta, whole_frame_objects

        layout = plan(path)
        columns = compared_columns(layout.schema, split_column, ignore_columns)
        objects = whole_frame_objects(layout)
        client = self.client()
        with mapped_errors("exact_duplicates"):
            offsets = self.row_offsets(layout.partitions)
            parts = [delayed(hash_partition)(part, layout.schema, split_column, tuple(ignore_columns), offset, objects)
                     for part, offset in zip(layout.partitions, offsets)]
            rows = dd.from_delayed(parts, meta=hash_meta(), verify_meta=False)
            shuffled = rows.shuffle(on="h", npartitions=max(rows.npartitions, 1))
            leaking = shuffled.map_partitions(leaking_rows, meta=hash_meta())
            found = client.compute(leaking, sync=True)
        return duplicate_groups(found, columns)

    def entity_overlap(self, path, *, split_column: str, entity_column: str, sample: int = 50) -> Any:
        from .leakage import entity_overlap

        return entity_overlap(self, path, split_column=split_column, entity_column=entity_column, sample=sample)

    def near_duplicates(self, path, *, split_column: str, ignore_columns: tuple[str, ...] = (),
                        **options: Any) -> Any:
        from .leakage import near_duplicates

        return near_duplicates(self, path, split_column=split_column, ignore_columns=ignore_columns,
                               options=options)

    def score(self, path, bundle: Any, *, kept: list[str], version_id: str, output) -> dict[str, Any]:
        from tether.plugins.rollout.batch import PredictionSummary

        layout = plan(path)
        staging, output = staging_folder(output)
        client = self.client()
        summary, rows = PredictionSummary(bundle), 0
        try:
            with mapped_errors("score"):
                shared = client.scatter(bundle, broadcast=True)
                futures = [client.submit(score_partition, part, layout.schema, shared, kept, version_id,
                                         str(staging / part_name(part.index)), pure=False)
                           for part in layout.partitions]
                with self._watch("score", futures):
                    results = client.gather(futures)
                for n, part_summary in results:
                    rows += n
                    summary.merge(part_summary)
            os.replace(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        parts = [str(output / part_name(p.index)) for p in layout.partitions]
        return {"rows": rows, "parts": parts, **summary.result()}

    def point_in_time_join(self, entities, features, *, output, **join: Any) -> dict[str, Any]:
        import dask.dataframe as dd
        import numpy as np
        from dask import compute, delayed
        from tether.plugins.engines.work import ENTITY_ROW

        keys = [join["entity"]] if isinstance(join.get("entity"), str) else list(join.get("entity") or ())
        left, right = plan(entities), plan(features)
        client = self.client()
        staging, output = staging_folder(output)
        try:
            with mapped_errors("point_in_time_join"):
                offsets = self.row_offsets(left.partitions)
                left_meta = left.schema.empty_table().to_pandas().assign(**{ENTITY_ROW: np.int64(0)}).iloc[:0]
                ents = dd.from_delayed([delayed(entity_partition)(p, left.schema, o)
                                        for p, o in zip(left.partitions, offsets)], meta=left_meta, verify_meta=False)
                feats = dd.from_delayed([delayed(frame_partition)(p, right.schema) for p in right.partitions],
                                        meta=right.schema.empty_table().to_pandas(), verify_meta=False)
                n = max(ents.npartitions, 1)  # the same hash partitioning of the keys on both sides
                pairs = zip(ents.shuffle(on=keys, npartitions=n).to_delayed(),
                            feats.shuffle(on=keys, npartitions=n).to_delayed())
                written = [delayed(join_partition)(e, f, str(staging / part_name(i)), join)
                           for i, (e, f) in enumerate(pairs)]
                counts = compute(*written, scheduler=client)
            os.replace(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {"rows": sum(counts), "parts": [str(output / part_name(i)) for i, c in enumerate(counts) if c]}

    # -- helpers -------------------------------------------------------------------------------

    def row_offsets(self, partitions) -> list[int]:
        """The number of each partition's first row in the dataset (footers read on the workers)."""
        from tether.plugins.engines.partitions import offsets_of, partition_rows

        client = self.client()
        return offsets_of(client.gather(client.map(partition_rows, list(partitions), pure=False)))

    def _ordered(self, operation: str, func: Callable, items: Iterable, *args: Any) -> Iterator[Any]:
        """``func(item, *args)`` for each item, run on workers, yielded in order, with at most
        ``in_flight`` results submitted and not yet consumed."""
        client = self.client()
        items = list(items)
        pending: deque = deque()
        progress = Progress(operation, len(items), engine=self.name, every=self.progress_every)
        token = os.urandom(4).hex()
        try:
            with mapped_errors(operation):
                for i, item in enumerate(items):
                    pending.append(client.submit(func, item, *args, key=f"tether-{operation}-{i:05d}-{token}",
                                                 priority=len(items) - i))
                    if len(pending) >= self.in_flight:
                        yield self._next(pending, progress)
                while pending:
                    yield self._next(pending, progress)
        finally:
            progress.close()
            if pending:
                client.cancel(list(pending))

    @staticmethod
    def _next(pending: deque, progress: Progress) -> Any:
        future = pending.popleft()
        result = future.result()
        future.release()
        progress.step()
        return result

    def _watch(self, operation: str, futures: list) -> Progress:
        """Report progress as the futures finish (see :class:`~tether.plugins.progress.Progress`);
        use the result as a context manager around the wait, so its bar goes on an error too."""
        progress = Progress(operation, len(futures), engine=self.name, every=self.progress_every)
        for future in futures:
            future.add_done_callback(lambda _f: progress.step())
        return progress
