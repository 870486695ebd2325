"""The dataset card: fields a user declares, column statistics computed while streaming,
and the card's text form (``tether snapshots show``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from tether.errors import ConfigError, reject_unknown_keys
from tether.records import ColumnSummary, DatasetSnapshot

from .fingerprint import canonical_type

#: Distinct values tracked per text column for the card's top categories.
MAX_TRACKED_DISTINCT = 10_000
TOP_N = 5

#: Dataset-card fields a user declares (``card:`` in a chain, ``card=`` in Python);
#: everything else on the card is computed from the data.
CARD_FIELDS: dict[str, type] = {
    "description": str,
    "version": str,
    "owner": str,
    "source_systems": tuple,
    "selection": str,
    "filters": tuple,
    "exclusions": tuple,
    "label_definition": str,
    "preprocessing": tuple,
    "limitations": tuple,
    "synthetic": bool,
}


def declared_card(fields: Mapping[str, Any] | None, *, where: str = "card") -> dict[str, Any]:
    """Validate declared card fields; lists become tuples. Unknown keys are a ConfigError."""
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise ConfigError(f"{where}: expected a mapping of card fields, got {type(fields).__name__}")
    reject_unknown_keys(fields, CARD_FIELDS, where, what="card field")
    return {key: _card_value(CARD_FIELDS[key], value, f"{where}.{key}") for key, value in fields.items()}


def _card_value(kind: type, value: Any, where: str) -> Any:
    if kind is tuple:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    elif not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def check_card(instance, attribute, value) -> None:
    """attrs validator for a source's ``card`` parameter."""
    declared_card(value, where="card")


class ColumnStats:
    """One column's summary (missing share, min/max, mean, top categories), fed in pieces."""

    def __init__(self, field) -> None:
        import pyarrow as pa

        self.field = field
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        self.numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        self.orderable = self.numeric or pa.types.is_temporal(t) or canonical_type(t) in ("string", "binary") \
            or pa.types.is_boolean(t)
        self.categorical = canonical_type(t) == "string" or pa.types.is_boolean(t) or pa.types.is_dictionary(field.type)
        self.rows = self.nulls = 0
        self.min = self.max = None
        self.sum = 0.0
        self.counted = 0
        self.counts: dict[Any, int] | None = {} if self.categorical else None

    def update(self, column) -> None:
        import pyarrow as pa

        self.rows += len(column)
        self.nulls += column.null_count
        if len(column) == column.null_count:
            return
        if pa.types.is_dictionary(column.type) and self.orderable:
            column = column.cast(column.type.value_type)
        if self.counts is not None and pa.types.is_boolean(column.type):
            self._count_booleans(column)
            return
        if self.counts is not None and self._count_categories(column):
            return
        self._update_range(column)
        if self.numeric:
            self._add_sum(column)

    def _widen(self, lo, hi) -> None:
        self.min = lo if self.min is None or _lt(lo, self.min) else self.min
        self.max = hi if self.max is None or _lt(self.max, hi) else self.max

    def _count_booleans(self, column) -> None:
        import pyarrow.compute as pc

        trues = pc.sum(column).as_py() or 0  # cheap: count the trues
        for value, count in ((True, trues), (False, len(column) - column.null_count - trues)):
            if count:
                self.counts[value] = self.counts.get(value, 0) + count
                self._widen(value, value)

    def _count_categories(self, column) -> bool:
        """Count the values; False once there are too many to be categories (an identifier)."""
        import pyarrow.compute as pc

        vc = pc.value_counts(column)
        values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
        for value, count in zip(values, counts):
            if value is not None:
                self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > MAX_TRACKED_DISTINCT:
            self.counts = None
            return False
        present = [v for v in values if v is not None]
        if present:  # min/max come from the distinct values
            self._widen(min(present), max(present))
        return True

    def _update_range(self, column) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.orderable and pa.types.is_floating(column.type) and not pa.types.is_float16(column.type):
            import numpy as np  # SIMD fmin/fmax (NaN-skipping) is several times faster here

            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                values = chunk.to_numpy(zero_copy_only=False)  # nulls become NaN, which fmin/fmax skip
                if len(values):
                    lo, hi = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
                    if not math.isnan(lo):
                        self._widen(lo, hi)
        elif self.orderable:
            try:
                mm = pc.min_max(column)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                if lo is not None:
                    self._widen(lo, hi)
            except (pa.ArrowNotImplementedError, TypeError):
                self.orderable = False

    def _add_sum(self, column) -> None:
        import pyarrow.compute as pc

        total = pc.sum(column, min_count=1).as_py()
        if total is not None:
            self.sum += float(total)
            self.counted += len(column) - column.null_count

    def summary(self, fingerprint: str) -> ColumnSummary:
        top: tuple[tuple[str, int], ...] = ()
        distinct = None
        if self.counts is not None and self.categorical:
            distinct = len(self.counts)
            ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_N]
            top = tuple((str(v), int(c)) for v, c in ranked)
        mean = self.sum / self.counted if self.numeric and self.counted else None
        if mean is not None and not math.isfinite(mean):
            mean = None
        return ColumnSummary(
            name=self.field.name, type=str(self.field.type),
            missing_share=round(self.nulls / self.rows, 6) if self.rows else 0.0,
            distinct=distinct, min=jsonable(self.min), max=jsonable(self.max),
            mean=round(mean, 9) if mean is not None else None, top=top, null_count=self.nulls,
            fingerprint="xxh3_128:" + fingerprint,
        )


def _lt(a, b) -> bool:
    try:
        return a < b
    except TypeError:
        return str(a) < str(b)


def jsonable(value):
    """A statistic or key value as JSON can hold it (dates as ISO text, bytes as hex...)."""
    import decimal

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value[:32].hex()
    return str(value)


def time_range(stats: list[ColumnStats], schema, time_column: str | None):
    """The (min, max) of the time column as UTC datetimes, or None."""
    if not time_column:
        return None
    stat = stats[schema.names.index(time_column)]
    lo, hi = stat.min, stat.max
    if lo is None:
        return None

    def as_dt(v):
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)

    return (as_dt(lo), as_dt(hi))


def format_card(r: DatasetSnapshot) -> str:
    """The card as ``tether snapshots show`` prints it."""
    card = r.card
    lines = [f"snapshot {r.id}", f"  dataset        {r.name} v{r.version}" + (f" (declared version {card.version})"
                                                                              if card.version else "")]
    lines.append(f"  fingerprint    {r.fingerprint}")
    lines.append(f"  created        {r.created_at:%Y-%m-%d %H:%M:%S}Z")
    lines.append(f"  source         {r.source}")
    declared = [("description", card.description), ("owner", card.owner),
                ("source systems", ", ".join(card.source_systems)), ("selection", card.selection),
                ("filters", "; ".join(card.filters)), ("exclusions", "; ".join(card.exclusions)),
                ("label", card.label_definition), ("preprocessing", "; ".join(card.preprocessing)),
                ("limitations", "; ".join(card.limitations))]
    for label, value in declared:
        lines.append(f"  {label:<14} {value or '(not declared)'}")
    lines.append(f"  synthetic      {'yes' if card.synthetic else 'no'}")
    lines.append(f"  rows x cols    {card.num_rows:,} x {card.num_columns}")
    if card.time_range:
        lo, hi = card.time_range
        lines.append(f"  time range     {lo:%Y-%m-%d %H:%M:%S} .. {hi:%Y-%m-%d %H:%M:%S} (column {r.time_column})")
    if r.key_columns:
        lines.append(f"  key            {', '.join(r.key_columns)}")
    lines.append(f"  stored         {len(r.objects)} Parquet object(s), {r.size_bytes:,} bytes")
    lines.append("  columns:")
    lines.extend(_column_line(c) for c in card.columns)
    return "\n".join(lines)


def _column_line(c: ColumnSummary) -> str:
    if c.top:
        shape = "top " + ", ".join(f"{v} ({n})" for v, n in c.top[:3]) + f"; {c.distinct} distinct"
    elif c.min is not None:
        shape = f"min {c.min}  max {c.max}" + (f"  mean {c.mean:.6g}" if c.mean is not None else "")
    else:
        shape = ""
    return f"    {c.name:<20} {c.type:<24} missing {c.missing_share:>7.2%}  {shape}"
