"""Reading snapshots back: finding one by reference, its verified parts, streaming its rows,
and exporting it to a Parquet or CSV file (or CSV on a stream)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tether.errors import ConfigError, IntegrityError, NotFoundError
from tether.records import DatasetSnapshot

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from tether.workspace import Workspace


def verified_part_paths(workspace: Workspace, snapshot: DatasetSnapshot) -> list[Path]:
    """Local paths of the snapshot's Parquet parts, each checked against its digest first."""
    if not snapshot.objects:
        raise IntegrityError(f"snapshot {snapshot.id} has no stored objects")
    paths = []
    storage = workspace.storage
    getter = getattr(storage, "verified_path", None)  # optional in the Storage contract
    for ref in snapshot.objects:
        try:
            paths.append(Path(getter(ref)) if callable(getter) else _verified_copy(storage, ref))
        except NotFoundError:
            raise IntegrityError(f"snapshot {snapshot.id}: object '{ref.key}' is missing from storage") from None
        except IntegrityError as exc:
            raise IntegrityError(f"snapshot {snapshot.id}: {exc}") from None
    return paths


def _verified_copy(storage, ref) -> Path:
    import tempfile

    data = storage.read_bytes(ref)
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(tmp)


def iter_snapshot_batches(workspace: Workspace, snapshot: DatasetSnapshot, columns: list[str] | None = None,
                          batch_rows: int = 128 * 1024) -> Iterator[pa.RecordBatch]:
    """The snapshot's rows in order, batch by batch; every object verified before it is read."""
    import pyarrow.parquet as pq

    for path in verified_part_paths(workspace, snapshot):
        with pq.ParquetFile(path) as pf:  # read, not mapped: memory stays bounded for any part size
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns, use_pandas_metadata=False)


def write_snapshot(workspace: Workspace, snapshot: DatasetSnapshot, output: str | os.PathLike,
                   fmt: str | None = None) -> Path:
    """Materialise a snapshot to a Parquet or CSV file, streaming (bounded memory); the file
    is written under a temporary name and renamed when complete."""
    import pyarrow.parquet as pq

    output = Path(output)
    fmt = (fmt or output.suffix.lstrip(".") or "parquet").lower()
    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format: expected parquet or csv, got '{fmt}'")
    paths = verified_part_paths(workspace, snapshot)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        schema = pq.read_schema(paths[0])
        (_copy_parquet if fmt == "parquet" else _copy_csv)(paths, schema, tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def _copy_parquet(paths: list[Path], schema, target: Path) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for path in paths:
            with pq.ParquetFile(path) as pf:
                for i in range(pf.num_row_groups):
                    writer.write_table(pf.read_row_group(i))


def _copy_csv(paths: list[Path], schema, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    plain = schema.remove_metadata()
    with pacsv.CSVWriter(target, plain) as writer:
        for path in paths:
            with pq.ParquetFile(path) as pf:
                for batch in pf.iter_batches(batch_size=64 * 1024):
                    writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=plain))


def write_csv_stream(workspace: Workspace, snapshot: DatasetSnapshot, stream: BinaryIO) -> None:
    """Stream the snapshot's rows, verified, as CSV (with a header) to a binary stream."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.output_stream(stream)
    first = True
    for batch in iter_snapshot_batches(workspace, snapshot):
        batch = pa.RecordBatch.from_arrays(batch.columns, schema=batch.schema.remove_metadata())
        pacsv.write_csv(batch, sink, write_options=pacsv.WriteOptions(include_header=first))
        first = False
    sink.flush()
