"""The data fingerprint: XXH3-128 over a canonical, chunk-independent form of every column
(the scheme is documented in ``docs/snapshots.md``)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .conform import from_pandas, storable_schema

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Version tag mixed into every fingerprint; bump it if the canonical form ever changes.
FINGERPRINT_SCHEME = "tether-fingerprint/1"


def canonical_type(t: pa.DataType) -> str:
    """The type as the fingerprint sees it: encodings and offset widths are not part of it."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if isinstance(t, pa.ExtensionType):
        return canonical_type(t.storage_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string"):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary"):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or _is_view(t, "list"):
        return f"list<{canonical_type(t.value_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"list<{canonical_type(t.value_type)}>[{t.list_size}]"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {canonical_type(f.type)}" for f in t) + ">"
    return str(t)


def canonical_type_str(type_string: str) -> str:
    """:func:`canonical_type` for a type already written as text (a record's column type)."""
    return {"large_string": "string", "large_binary": "binary", "string_view": "string"}.get(type_string, type_string)


def _is_view(t, family: str) -> bool:
    import pyarrow as pa

    check = {"string": "is_string_view", "binary": "is_binary_view", "list": "is_list_view"}[family]
    fn = getattr(pa.types, check, None)
    return bool(fn and fn(t)) or (family == "list" and bool(getattr(pa.types, "is_large_list_view", None)
                                                              and pa.types.is_large_list_view(t)))


def _fixed_width(t) -> bool:
    import pyarrow as pa

    try:
        return t.bit_width % 8 == 0 and not pa.types.is_boolean(t) and t.bit_width > 0
    except ValueError:
        return False


def _uint_of(width: int):
    import pyarrow as pa

    return {1: pa.uint8(), 2: pa.uint16(), 4: pa.uint32(), 8: pa.uint64()}[width]


def _int64_bytes(arr):
    """The data buffer of an int64/uint64 array, sliced to its rows."""
    return arr.buffers()[1].slice(arr.offset * 8, len(arr) * 8)


class _ArrayHasher:
    """Streams one column (or nested child) into XXH3-128 hashers, chunk-independently.

    Canonical form: ``nulls`` gets the global row number (uint64 LE) of every null;
    ``values`` gets fixed-width values (null slots zeroed) as little-endian bytes, booleans
    as one byte each, and for strings/binary the concatenated bytes, with each row's byte
    length (int64 LE) in ``lengths``; lists hash their lengths and recurse into their values;
    structs recurse into their fields. Streaming XXH3 is independent of how updates are cut,
    so any chunking of the same rows gives the same digests.
    """

    #: Long arrays are fed in slices so temporary copies (null filling, lengths) stay small.
    SLICE = 1 << 20

    def __init__(self, type_) -> None:
        import pyarrow as pa
        import xxhash

        self.type = type_
        self.rows = 0
        self.nulls = xxhash.xxh3_128()
        self.lengths = xxhash.xxh3_128()
        self.values = xxhash.xxh3_128()
        self.children: list[_ArrayHasher] = []
        t = type_
        while pa.types.is_dictionary(t) or isinstance(t, pa.ExtensionType):
            t = t.value_type if pa.types.is_dictionary(t) else t.storage_type
        self.base = t
        if pa.types.is_struct(t):
            self.children = [_ArrayHasher(f.type) for f in t]
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or _is_view(t, "list"):
            self.children = [_ArrayHasher(t.value_type)]

    def update(self, arr) -> None:
        if len(arr) > self.SLICE:
            for start in range(0, len(arr), self.SLICE):
                self._update(arr.slice(start, self.SLICE))
        else:
            self._update(arr)

    def _update(self, arr) -> None:
        import pyarrow as pa

        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        if len(arr) == 0:
            return
        t = self.base
        if arr.null_count:
            self._hash_nulls(arr)
        if pa.types.is_null(t):
            pass
        elif pa.types.is_boolean(t):
            self._hash_booleans(arr)
        elif _fixed_width(t):
            self._hash_fixed(arr, t.bit_width // 8)
        elif canonical_type(t) in ("string", "binary"):
            self._hash_bytes(arr, canonical_type(t) == "string")
        elif pa.types.is_struct(t):
            for child, values in zip(self.children, arr.flatten()):
                child.update(values)
        elif self.children:  # lists
            self._hash_list(arr)
        else:  # maps, unions, ...: a slow but exact textual form
            self._hash_as_text(arr)
        self.rows += len(arr)

    def _hash_nulls(self, arr) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        idx = pc.indices_nonzero(arr.is_null())  # uint64
        if self.rows:
            idx = pc.add(idx, pa.scalar(self.rows, pa.uint64()))
        self.nulls.update(_int64_bytes(idx))

    def _hash_booleans(self, arr) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        b = pc.cast(pc.fill_null(arr, False), pa.uint8()) if arr.null_count else pc.cast(arr, pa.uint8())
        self.values.update(b.buffers()[1].slice(b.offset, len(b)))

    def _hash_fixed(self, arr, width: int) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        view = arr.view(_uint_of(width)) if width in (1, 2, 4, 8) else arr.view(pa.binary(width))
        if arr.null_count:
            zero = pa.scalar(0, view.type) if width in (1, 2, 4, 8) else pa.scalar(b"\0" * width, view.type)
            view = pc.fill_null(view, zero)
        self.values.update(view.buffers()[1].slice(view.offset * width, len(view) * width))

    def _hash_bytes(self, arr, text: bool) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if _is_view(arr.type, "string"):
            arr = arr.cast(pa.large_string())
        elif _is_view(arr.type, "binary"):
            arr = arr.cast(pa.large_binary())
        if arr.null_count:
            arr = pc.fill_null(arr, "" if text else b"")
        self.lengths.update(_int64_bytes(pc.cast(pc.binary_length(arr), pa.int64())))
        large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)
        start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
        data = arr.buffers()[2]
        if data is not None and end > start:
            self.values.update(data.slice(start, end - start))

    def _hash_list(self, arr) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.lengths.update(_int64_bytes(pc.fill_null(pc.cast(pc.list_value_length(arr), pa.int64()), 0)))
        self.children[0].update(arr.flatten())

    def _hash_as_text(self, arr) -> None:
        for value in arr.to_pylist():
            text = json.dumps(value, sort_keys=True, default=repr).encode()
            self.lengths.update(len(text).to_bytes(8, "little"))
            self.values.update(text)

    def digest(self) -> bytes:
        import xxhash

        h = xxhash.xxh3_128()
        h.update(canonical_type(self.type).encode())
        h.update(self.rows.to_bytes(8, "little"))
        for part in (self.nulls, self.lengths, self.values):
            h.update(part.digest())
        for child in self.children:
            h.update(child.digest())
        return h.digest()


class Fingerprinter:
    """The data fingerprint of a table fed in pieces (see ``docs/snapshots.md``)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns = [_ArrayHasher(f.type) for f in schema]
        self.num_rows = 0

    def update(self, piece, pool: ThreadPoolExecutor | None = None) -> None:
        """Add the next rows (a Table or RecordBatch with this schema)."""
        import pyarrow as pa

        def feed(i: int) -> None:
            column = piece.column(i)
            for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
                self.columns[i].update(chunk)

        if pool is None:
            for i in range(len(self.columns)):
                feed(i)
        else:
            for _ in pool.map(feed, range(len(self.columns))):
                pass
        self.num_rows += piece.num_rows

    def column_digests(self) -> list[str]:
        return [c.digest().hex() for c in self.columns]

    def hexdigest(self) -> str:
        import xxhash

        h = xxhash.xxh3_128()
        header = {"scheme": FINGERPRINT_SCHEME, "rows": self.num_rows,
                  "columns": [[f.name, canonical_type(f.type)] for f in self.schema]}
        h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        for column in self.columns:
            h.update(column.digest())
        return h.hexdigest()


def fingerprint_table(data, *, threads: int | None = None) -> str:
    """``xxh3_128:<hex>`` of a Table, RecordBatch or DataFrame's data (schema + values in order)."""
    import pandas as pd

    table = from_pandas(data, "data") if isinstance(data, pd.DataFrame) else data
    target = storable_schema(table.schema)
    if not target.equals(table.schema, check_metadata=False):
        table = table.cast(target)
    fp = Fingerprinter(table.schema)
    workers = threads if threads is not None else min(4, os.cpu_count() or 1)
    if workers > 1 and table.num_columns > 1:
        with ThreadPoolExecutor(workers) as pool:
            fp.update(table, pool)
    else:
        fp.update(table)
    return "xxh3_128:" + fp.hexdigest()
