"""Taking a snapshot: stream the data into temporary Parquet parts while a worker thread
fingerprints and summarizes it, commit the parts as content-addressed objects, and only
then write the record, so a snapshot is visible whole or not at all. On a chain's engine
whose workers can write to the storage, the workers encode the parts (one per input
partition) and this process only fingerprints and summarizes them, in row order."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigError, DataError, StoreError
from tether.log import get_logger
from tether.plugins.local_storage.files import fsync_path
from tether.plugins.tables import check_names, first_line
from tether.records import ColumnInfo, DatasetCard, DatasetSnapshot

from .card import ColumnStats, declared_card, time_range
from .checks import check_columns
from .conform import PIECE_BYTES, describe_input, iter_input, iter_pieces, storable_schema
from .fingerprint import Fingerprinter
from .writer import PARQUET_MEDIA_TYPE, PartWriter

if TYPE_CHECKING:  # pragma: no cover
    from tether.workspace import Workspace


def snapshot_id(fingerprint: str) -> str:
    """The record id of the snapshot with this fingerprint."""
    return "snap-" + fingerprint.split(":", 1)[1][:24]


class _Capture:
    """One streaming pass: each piece is written by the caller's thread while a worker
    thread hashes and summarizes the previous one (at most one piece is in flight). Parts an
    engine's workers wrote (:meth:`add_written`) are only hashed and summarized here."""

    def __init__(self, storage, what: str, time_column: str | None, key: tuple[str, ...]) -> None:
        self.storage, self.what, self.time_column, self.key = storage, what, time_column, key
        self.schema = None
        self.writer: PartWriter | None = None
        self.fingerprint: Fingerprinter | None = None
        self.stats: list[ColumnStats] = []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="tether-fingerprint")
        self._pending = None
        self.reserved: list[Path] = []  # temp files handed to an engine's workers
        self.written: list[tuple[Path, int]] = []  # the parts they wrote, in row order

    def _start(self, piece) -> None:
        self.start(piece.schema)
        self.writer = PartWriter(self.storage, self.schema)

    def start(self, schema):
        """Check the columns and set up the fingerprint; return the schema the data is stored in."""
        self.schema = storable_schema(schema)
        check_names(self.schema.names, self.what)
        check_columns(self.schema, self.time_column, self.key, self.what)
        self.fingerprint = Fingerprinter(self.schema)
        self.stats = [ColumnStats(f) for f in self.schema]
        return self.schema

    def reserve(self, index: int) -> str:
        """A fresh temp file in storage for a worker to write partition ``index`` into (gc
        leaves it alone while this process lives); an absolute path, for the workers."""
        path = Path(self.storage.temp_path(".parquet")).resolve()
        self.reserved.append(path)
        return str(path)

    def add_written(self, table, path: str, rows: int) -> None:
        """A partition a worker stored at ``path``: hash and summarize ``table`` (its rows)."""
        if rows == 0:
            Path(path).unlink(missing_ok=True)
            return
        if self._pending is not None:
            self._pending.result()
        self._pending = self.pool.submit(_digest_piece, self.fingerprint, self.stats, table)
        self.written.append((Path(path), rows))

    def _conform(self, piece):
        import pyarrow as pa

        if piece.schema.equals(self.schema, check_metadata=False):
            return piece
        try:
            return piece.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
            raise DataError(f"{self.what}: rows {self.fingerprint.num_rows:,}+ have a different schema than the "
                            f"first rows ({first_line(exc)})") from None

    def add(self, piece) -> None:
        if self.schema is None:
            self._start(piece)
        piece = self._conform(piece)
        if piece.num_rows == 0:
            return
        if self._pending is not None:
            self._pending.result()
        self._pending = self.pool.submit(_digest_piece, self.fingerprint, self.stats, piece)
        self.writer.write(piece)
        if self.writer.current is not None:  # start writeback now, so the commit's fsync is short
            self.pool.submit(fsync_path, self.writer.current)

    def finish(self) -> list[tuple[Path, int]]:
        """Wait for the last piece; return the temp parts and their row counts."""
        if self._pending is not None:
            self._pending.result()
        if self.schema is None or self.fingerprint is None or self.fingerprint.num_rows == 0:
            columns = f" (columns: {', '.join(self.schema.names)})" if self.schema else ""
            raise DataError(f"{self.what} has no rows{columns}")
        return self.writer.finish() if self.writer is not None else list(self.written)

    def discard(self) -> None:
        """Remove every temp part, written here or by workers (nothing was committed)."""
        if self.writer is not None:
            self.writer.discard()
        for path in self.reserved:
            path.unlink(missing_ok=True)

    def close(self, committed: bool) -> None:
        self.pool.shutdown(wait=True)
        if not committed:
            self.discard()


def _digest_piece(fingerprint: Fingerprinter, stats: list[ColumnStats], piece) -> None:
    fingerprint.update(piece)
    for stat, column in zip(stats, piece.columns):
        stat.update(column)


def take_snapshot(data, *, name: str, source: str, workspace: Workspace, time_column: str | None = None,
                  key: Iterable[str] = (), card: dict[str, Any] | None = None, context=None,
                  log=None) -> DatasetSnapshot:
    """Stream ``data`` into storage, fingerprint it and write its record; return the record.

    ``data`` is anything :func:`~tether.plugins.snapshots.conform.iter_input` accepts; a
    ``PartitionedBatches`` on an engine that runs ``write_parts`` (the ``parquet`` source in a
    chain run on Dask) has its parts written by the workers when they can write to the
    storage. If a snapshot with the same fingerprint exists, nothing is stored and that snapshot is
    returned. The record is written to the metadata store last, after every object is
    committed (see ``docs/snapshots.md``).
    """
    log = log or get_logger("tether.snapshot")
    if not name or not isinstance(name, str):
        raise ConfigError("a snapshot needs a dataset name (--name / dataset: / name=)")
    declared = declared_card(card)
    key = tuple(key or ())
    storage, store = workspace.storage, workspace.store
    probe = storage.temp_path(".probe")  # fails early, before reading anything, if storage is not writable
    Path(probe).unlink(missing_ok=True)
    what = f"dataset '{name}' ({source})"
    capture = _Capture(storage, what, time_column, key)
    committed = False
    try:
        engine = _parts_engine(data, storage, context, log)
        if engine is not None:
            with contextlib.closing(engine.write_parts(data.path, schema=capture.start,
                                                       part_path=capture.reserve)) as written:
                for table, path, rows in written:
                    capture.add_written(table, path, rows)
        else:
            for piece in iter_pieces(iter_input(data, what=what, context=context)):
                capture.add(piece)
        parts = capture.finish()
        digest = "xxh3_128:" + capture.fingerprint.hexdigest()
        existing = store.get(snapshot_id(digest), kind="snapshot")
        if existing is not None:
            capture.discard()
            committed = True
            if existing.name != name:
                log.warning("identical data already stored", snapshot=existing.id, name=existing.name,
                            requested=name)
            return existing
        refs = [storage.put_file(path, suffix=".parquet", media_type=PARQUET_MEDIA_TYPE, move=True)
                for path, _rows in parts]
        build = _record_builder(capture, digest, refs, [rows for _, rows in parts], name=name, source=source,
                                time_column=time_column, key=key, declared=declared)
        try:
            store.put_versioned(build, kind="snapshot", name=name)
        finally:  # committed or not, gc may judge these objects by the records alone now
            _release(storage, refs)
        committed = True
        return _read_back(store, snapshot_id(digest))
    except MemoryError as exc:  # pyarrow's ArrowMemoryError is one too
        raise _out_of_memory(what, exc) from None
    finally:
        capture.close(committed)


def _parts_engine(data, storage, context, log):
    """The engine whose workers write the snapshot's parts, or ``None`` (this process writes
    them): ``data`` is a Parquet source on a chain's engine that runs ``write_parts``, and
    the storage is a local file-system one the workers write to (its temp files); a storage
    they cannot write is declined with a ``stage runs locally`` line."""
    from tether.plugins.engines.partitions import PartitionedBatches
    from tether.plugins.local_storage.storage import LocalStorage

    engine = data.engine if isinstance(data, PartitionedBatches) else None
    if engine is None or not engine.supports("write_parts"):
        return None  # the engine (if any) reads; this process writes, as it always did
    if not isinstance(storage, LocalStorage):
        stage = getattr(getattr(context, "stage", None), "id", None)
        log.warning("stage runs locally", stage=stage, engine=engine.name,
                    reason=f"the {engine.name} engine does not run 'write_parts' on storage {storage.describe()} "
                           "(its workers write only to a local file-system storage): this process writes the "
                           "snapshot's objects, the engine reads the partitions")
        return None
    return engine


def _out_of_memory(what: str, exc: MemoryError) -> DataError:
    return DataError(f"{what}: ran out of memory ({first_line(exc)}); a snapshot holds a few pieces of up to "
                     f"{PIECE_BYTES >> 20} MiB at once (more for very wide rows), plus the libraries: "
                     "give the process more memory")


def _release(storage, refs) -> None:
    release = getattr(storage, "release", None)  # optional: storages with gc leases
    if callable(release):
        release([ref.key for ref in refs])


def _record_builder(capture: _Capture, digest: str, refs, object_rows, *, name, source, time_column, key,
                    declared):
    """``build(version) -> DatasetSnapshot`` for the store to call with the allocated version."""
    schema, fingerprint = capture.schema, capture.fingerprint
    summaries = tuple(s.summary(d) for s, d in zip(capture.stats, fingerprint.column_digests()))
    card_record = DatasetCard(
        **declared, num_rows=fingerprint.num_rows, num_columns=len(schema),
        time_range=time_range(capture.stats, schema, time_column),
        columns=summaries, name=name, source=source, time_column=time_column, key_columns=key,
    )
    columns = tuple(ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema)

    def build(version: int) -> DatasetSnapshot:
        return DatasetSnapshot(
            id=snapshot_id(digest), name=name, fingerprint=digest, num_rows=fingerprint.num_rows,
            columns=columns, objects=tuple(refs), source=source, time_column=time_column, key_columns=key,
            card=card_record, version=version, object_rows=tuple(object_rows),
            size_bytes=sum(r.size for r in refs),
        )

    return build


def _read_back(store, record_id: str) -> DatasetSnapshot:
    record = store.get(record_id, kind="snapshot")
    if record is None:
        raise StoreError(f"snapshot {record_id} was written but cannot be read back from the metadata store")
    return record


def create_snapshot(data, *, name: str, workspace: Workspace | str | os.PathLike = ".tether",
                    time_column: str | None = None, key: Iterable[str] = (), card: dict[str, Any] | None = None,
                    source: str | None = None, host=None) -> DatasetSnapshot:
    """Snapshot a DataFrame, Arrow table, record batches, or a CSV/Parquet path.

    Example::

        from tether.plugins.snapshots.create import create_snapshot
        snap = create_snapshot(frame, name="customers", time_column="event_ts",
                               key=["customer_id"], card={"owner": "data-team"})
        print(snap.id, snap.version)

    ``workspace`` is a :class:`~tether.workspace.Workspace` or a workspace folder. Returns the
    record, already in the metadata store; identical data returns the existing snapshot.
    """
    from tether.workspace import Workspace

    own = not isinstance(workspace, Workspace)
    if own:
        from tether.manager import PluginHost

        workspace = Workspace.open(host or PluginHost(entry_points=False), workspace)
    try:
        if source is None:
            source = describe_input(data)
        return take_snapshot(data, name=name, source=source, workspace=workspace, time_column=time_column,
                             key=key, card=card)
    finally:
        if own:
            workspace.close()
