"""Reading the rows of a SQL query (SQLite or PostgreSQL) as record batches of one schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import ConfigError, DataError
from tether.plugins.tables import first_line

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Rows held back while some column has only seen NULLs (its type is still unknown).
INFER_ROWS = 1_000_000


def read_sqlite(path: Path, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The query's rows from a SQLite file opened read-only (``mode=ro``); one statement only."""
    import sqlite3

    if not path.is_file():
        raise DataError(f"sql source: SQLite database '{path}' not found")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"sql source: SQLite database '{path}' cannot be opened: {exc}") from None
    try:
        try:
            cursor = conn.execute(query)
        except sqlite3.Error as exc:
            raise DataError(f"sql source: query failed on '{path.name}': {first_line(exc)}") from None
        yield from rows_to_batches(cursor, cursor.fetchmany, batch_rows, f"sql source '{path.name}'")
    except sqlite3.Error as exc:
        raise DataError(f"sql source: query failed on '{path.name}': {first_line(exc)}") from None
    finally:
        conn.close()


def read_postgres(url: str, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The query's rows from PostgreSQL (one statement, in a READ ONLY transaction), fetched in
    batches through a server-side cursor."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("sql source: PostgreSQL needs psycopg: pip install 'tether[postgres]'") from None
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        # the message may echo connection parameters; keep only its first line, no DSN
        raise DataError(f"sql source: cannot connect to PostgreSQL: {first_line(exc)}") from None
    try:
        # a READ ONLY transaction (a query calling a function that writes fails), and a named
        # (server-side) cursor: rows arrive in batches, and DECLARE takes exactly one SELECT
        conn.read_only = True
        with conn.transaction(), conn.cursor(name="tether_snapshot") as cursor:
            try:
                cursor.execute(query)
                first = cursor.fetchmany(batch_rows)
            except psycopg.Error as exc:
                raise DataError(f"sql source: query failed on PostgreSQL: {first_line(exc)}") from None
            pending = [first]

            def fetch(n):
                if pending:
                    return pending.pop()
                return cursor.fetchmany(n)

            types, converters = postgres_types(cursor.description)
            yield from rows_to_batches(cursor, fetch, batch_rows, "sql source (PostgreSQL)", types, converters)
    except psycopg.Error as exc:
        raise DataError(f"sql source: query failed on PostgreSQL: {first_line(exc)}") from None
    finally:
        conn.close()


def postgres_types(description) -> tuple[list, list]:
    """Arrow types (and value converters) from PostgreSQL column type OIDs."""
    import pyarrow as pa

    fixed = {16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 700: pa.float32(),
             701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(), 19: pa.string(),
             17: pa.binary(), 1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
             1083: pa.time64("us"), 1186: pa.duration("us")}
    types, converters = [], []
    for column in description:
        oid = column.type_code
        convert = None
        if oid == 1700:  # numeric(p, s); unconstrained numeric gets 38 digits, 10 after the point
            precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
            type_ = pa.decimal128(precision, scale or 0) if precision else pa.decimal128(38, 10)
        elif oid in (114, 3802):  # json, jsonb: canonical JSON text
            type_, convert = pa.string(), lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"))
        elif oid == 2950:  # uuid
            type_, convert = pa.string(), str
        else:
            type_ = fixed.get(oid)
        types.append(type_)
        converters.append(convert)
    return types, converters


def rows_to_batches(cursor, fetch, batch_rows: int, what: str, types=None,
                    converters=None) -> Iterator[pa.RecordBatch]:
    """Turn DB-API rows into record batches with one schema: the declared ``types`` where
    known, else inferred from the first values (batches are held back until every column
    has shown a value, or ``INFER_ROWS`` rows have passed)."""
    import pyarrow as pa

    names = [d[0] for d in cursor.description or []]
    if not names:
        raise DataError(f"{what}: the query returned no columns")
    types = types or [None] * len(names)
    converters = converters or [None] * len(names)
    schema: pa.Schema | None = None
    held: list[pa.RecordBatch] = []  # batches before every column's type is known
    while True:
        rows = fetch(batch_rows)
        if not rows:
            break
        batch = _to_batch(rows, names, types, converters, what)
        if schema is not None:
            yield _conform(batch, schema, what)
            continue
        held.append(batch)
        inferred = _unify([b.schema for b in held], what).types
        if all(not pa.types.is_null(t) for t in inferred) or sum(b.num_rows for b in held) > INFER_ROWS:
            schema = pa.schema([pa.field(n, t) for n, t in zip(names, inferred)])
            for b in held:
                yield _conform(b, schema, what)
            held = []
    if held:
        schema = _unify([b.schema for b in held], what)
        for b in held:
            yield _conform(b, schema, what)
    elif schema is None:
        yield _to_batch([], names, types, converters, what)


def _to_batch(rows, names, types, converters, what: str) -> pa.RecordBatch:
    import pyarrow as pa

    columns = list(zip(*rows)) if rows else [[] for _ in names]
    arrays = []
    for name, values, type_, convert in zip(names, columns, types, converters):
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        try:
            arrays.append(pa.array(values, type=type_))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise DataError(f"{what}: column '{name}' has values of mixed types ({first_line(exc)}); "
                            "cast it in the query") from None
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, what: str) -> pa.RecordBatch:
    import pyarrow as pa

    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        bad = next((f.name for f, t in zip(schema, batch.schema.types) if f.type != t), schema.names[0])
        raise DataError(f"{what}: column '{bad}' has values of mixed types ({first_line(exc)}); "
                        "cast it in the query") from None


def _unify(schemas, what: str):
    import pyarrow as pa

    if len(schemas) == 1:
        return schemas[0]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{what}: a column has values of mixed types ({first_line(exc)}); "
                        "cast it in the query") from None
