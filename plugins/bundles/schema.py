"""A bundle's input/output schema: what it is inferred from, and how rows are checked.

Inputs are the fitted transform's input columns, typed from the training snapshot
(``integer``, ``number``, ``string``, ``boolean``, ``timestamp``); a string column also
lists the categories seen in the training rows (up to :data:`MAX_CATEGORIES`; a column
with more distinct values is not checked for unseen ones) and the most frequent one, the
``fallback`` value. :func:`validate` turns request rows or a batch into the frame the
transform expects, or raises :class:`~tether.errors.SchemaError` naming the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import ConfigError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MAX_CATEGORIES = 1000
UNSEEN_POLICIES = ("error", "ignore", "fallback")
TYPES = ("integer", "number", "string", "boolean", "timestamp")


def arrow_kind(arrow_type: str) -> str:
    """The schema type of an Arrow type string (``int64`` -> ``integer``)."""
    text = arrow_type.lower()
    if text.startswith(("int", "uint")):
        return "integer"
    if text.startswith(("float", "double", "halffloat", "decimal")):
        return "number"
    if text.startswith("bool"):
        return "boolean"
    if text.startswith(("timestamp", "date")):
        return "timestamp"
    return "string"


def check_unseen(value: Any, key: str = "unseen") -> str:
    if value not in UNSEEN_POLICIES:
        raise ConfigError(f"must be one of {', '.join(UNSEEN_POLICIES)}, got {value!r}", key=key)
    return value


def infer_inputs(columns: list[str], types: dict[str, str], train: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The input fields: ``types`` maps a column to its Arrow type string; ``train`` holds
    the string columns' training values (for categories)."""
    out = []
    for name in columns:
        kind = arrow_kind(types.get(name, "double"))
        field: dict[str, Any] = {"name": name, "type": kind, "nullable": True, "categories": None, "fallback": None}
        if kind == "string" and train is not None and name in train:
            counts = train[name].dropna().astype(str).value_counts()
            if 0 < len(counts) <= MAX_CATEGORIES:
                field["categories"] = sorted(counts.index.tolist())
                field["fallback"] = str(counts.index[0])
        out.append(field)
    return out


def as_frame(rows: Any) -> pd.DataFrame:
    """A DataFrame of ``rows``: a DataFrame, a mapping (one row) or a list of mappings."""
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, (list, tuple)):
        raise SchemaError(f"expected a row (a mapping of field to value) or a list of rows, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SchemaError(f"row {i}: expected a mapping of field to value, got {type(row).__name__}")
    return pd.DataFrame.from_records(list(rows))


def validate(rows: Any, inputs: list[dict[str, Any]], *, unseen: str = "error") -> pd.DataFrame:
    """The input columns of ``rows`` in schema order with the training types; a missing
    field, a value of the wrong type or (with ``unseen="error"``) a category never seen
    in training raises ``SchemaError`` naming the field and the first offending row."""
    import pandas as pd

    frame = as_frame(rows)
    if len(frame) == 0:
        raise SchemaError("no rows to score")
    out = {}
    for field in inputs:
        name = field["name"]
        if name not in frame.columns:
            raise SchemaError(f"missing field '{name}' (the model needs: "
                              f"{', '.join(f['name'] for f in inputs)})", field=name)
        column = _typed(frame[name], field)
        if field.get("categories") is not None and unseen != "ignore":
            column = _categories(column, field, unseen)
        out[name] = column
    return pd.DataFrame(out, index=frame.index)


def _first_bad(series: pd.Series, bad) -> tuple[int, Any]:
    position = int(bad.to_numpy().nonzero()[0][0])
    value = series.iloc[position]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars read as Python ones
        value = value.item()
    return position, value


def _wrong(series: pd.Series, bad, field: dict[str, Any], expected: str) -> SchemaError:
    position, value = _first_bad(series, bad)
    return SchemaError(f"field '{field['name']}': expected {expected}, got {type(value).__name__} {value!r} "
                       f"(row {position})", field=field["name"])


def _typed(series: pd.Series, field: dict[str, Any]) -> pd.Series:
    """``series`` converted to the field's type; values of another type raise."""
    import pandas as pd
    from pandas.api import types as pt

    kind = field["type"]
    missing = series.isna()
    if kind in ("integer", "number"):
        if pt.is_numeric_dtype(series.dtype) and not pt.is_bool_dtype(series.dtype):
            return series
        if pt.infer_dtype(series, skipna=True) not in ("integer", "floating", "mixed-integer-float", "empty"):
            bad = ~missing & ~series.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
            if bad.any():
                raise _wrong(series, bad, field, "a number")
        return pd.to_numeric(series, errors="coerce")
    if kind == "boolean":
        if pt.is_bool_dtype(series.dtype):
            return series
        bad = ~missing & ~series.map(lambda v: isinstance(v, bool))
        if bad.any():
            raise _wrong(series, bad, field, "true or false")
        return series
    if kind == "timestamp":
        if pt.is_datetime64_any_dtype(series.dtype):
            return series
        try:
            return pd.to_datetime(series, utc=True)
        except (ValueError, TypeError):
            bad = ~missing & pd.to_datetime(series, utc=True, errors="coerce").isna()
            raise _wrong(series, bad, field, "a timestamp") from None
    if pt.is_string_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
        if series.dtype == object and pt.infer_dtype(series, skipna=True) not in ("string", "empty"):
            bad = ~missing & ~series.map(lambda v: isinstance(v, str))
            if bad.any():
                raise _wrong(series, bad, field, "a string")
        return series.astype(object)
    if missing.all():
        return series.astype(object)
    raise _wrong(series, ~missing, field, "a string")


def _categories(series: pd.Series, field: dict[str, Any], unseen: str) -> pd.Series:
    seen = set(field["categories"])
    unknown = series.notna() & ~series.isin(seen)
    if not unknown.any():
        return series
    if unseen == "fallback" and field.get("fallback") is not None:
        return series.mask(unknown, field["fallback"])
    position, value = _first_bad(series, unknown)
    shown = ", ".join(map(repr, field["categories"][:10])) + (", ..." if len(seen) > 10 else "")
    raise SchemaError(f"field '{field['name']}': category {value!r} (row {position}) was not seen in training "
                      f"(seen: {shown}); pass unseen='ignore' or 'fallback' to accept it", field=field["name"])
