"""Writing a snapshot's pieces to temporary Parquet parts in storage: one part per
``PART_BYTES`` in this process (:class:`PartWriter`), or one part per input partition on an
engine's workers (:func:`write_part_file`), with the same writer settings."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
#: A Parquet part (one stored object) is closed once it holds this many bytes of Arrow data.
PART_BYTES = 512 << 20
#: ``pyarrow.parquet.ParquetWriter`` settings of every part, wherever it is written
WRITER_OPTIONS = {"compression": "zstd"}


def write_piece(writer, piece) -> None:
    """Write one piece as one row group (a piece is the unit of writing and hashing)."""
    writer.write_table(piece, row_group_size=max(piece.num_rows, 1))


def write_part_file(path: str | os.PathLike, schema, pieces: Iterable) -> int:
    """Write ``pieces`` (one row group each) into the temp file at ``path``, which its
    reserver created: it is opened, never created, so a part its reserver has already
    removed (a snapshot that failed meanwhile) stays removed. The file is synced before
    this returns; return the rows written."""
    import pyarrow.parquet as pq

    rows = 0
    with open(path, "r+b") as fh:  # r+: fails rather than creating the file
        fh.truncate()  # a retried attempt starts over
        with pq.ParquetWriter(fh, schema, **WRITER_OPTIONS) as writer:
            for piece in pieces:
                write_piece(writer, piece)
                rows += piece.num_rows
        fh.flush()
        os.fsync(fh.fileno())
    return rows


class PartWriter:
    """Writes pieces (one row group each) to temp files; ``finish`` lists the parts and their
    row counts, ``discard`` removes them (nothing was committed)."""

    def __init__(self, storage, schema) -> None:
        self.storage = storage
        self.schema = schema
        self.parts: list[tuple[Path, int]] = []  # (temp path, rows)
        self.current: Path | None = None  # the part being written
        self._writer = None
        self._bytes = 0
        self._rows = 0

    def write(self, piece) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            path = self.storage.temp_path(".parquet")
            self.parts.append((path, 0))
            self.current = path
            self._writer = pq.ParquetWriter(path, self.schema, **WRITER_OPTIONS)
        write_piece(self._writer, piece)
        self._bytes += piece.nbytes
        self._rows += piece.num_rows
        if self._bytes >= PART_BYTES:
            self._close_part()

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.current = None
            self.parts[-1] = (self.parts[-1][0], self._rows)
            self._bytes = self._rows = 0

    def finish(self) -> list[tuple[Path, int]]:
        self._close_part()
        return self.parts

    def discard(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # already failing; the temp file is removed below
                self._writer.close()
            self._writer = None
        for path, _ in self.parts:
            Path(path).unlink(missing_ok=True)
