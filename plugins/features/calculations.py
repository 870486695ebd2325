"""Feature calculations: computing a definition over a source, training sets, and the
check that a calculation uses nothing from after its availability time.

A calculation is ``"module:function"`` (a function of the source DataFrame returning a
Series aligned with it, or a frame of entity, timestamp and the feature) or a SQL
expression evaluated by DuckDB over the source registered as ``src`` (window functions
allowed; a full ``SELECT``/``WITH`` query is used as written). SQL must be exactly one
``SELECT`` statement, and DuckDB runs it with file and network access disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tether.callables import import_callable
from tether.errors import ConfigError, DataError
from tether.records import Finding
from tether.sql import quote_identifier

from .catalogue import PY_CALLABLE, FeatureDefinition
from .values import jsonable, values_equal

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def compute_feature(definition: FeatureDefinition, source: pd.DataFrame,
                    calculation: str | Callable | None = None) -> pd.DataFrame:
    """Run a definition's calculation over ``source``: a frame of entity, timestamp, value.

    ``calculation`` overrides the definition's (the skew check passes the serving one).
    A failure is a :class:`DataError` naming the feature and the calculation.
    """
    calc = definition.calculation if calculation is None else calculation
    name, entity, ts = definition.name, definition.entity, definition.timestamp
    label = calc if isinstance(calc, str) else getattr(calc, "__qualname__", repr(calc))
    if not calc:
        raise ConfigError(f"feature '{name}' has no calculation; set 'calculation' in the catalogue")
    if not entity or not ts:
        raise ConfigError(f"feature '{name}' needs 'entity' and 'timestamp' to be computed over time")
    for column in (entity, ts):
        if column not in source:
            raise DataError(f"feature '{name}': the source has no column '{column}'")
    if callable(calc) or PY_CALLABLE.match(calc):
        func = calc if callable(calc) else import_callable(calc, where=f"feature '{name}': calculation")
        try:
            result = func(source)
        except Exception as exc:  # noqa: BLE001 - user code: any failure names the feature
            raise DataError(f"feature '{name}': calculation {label} raised {type(exc).__name__}: {exc}") from None
    else:
        result = _sql_calculation(name, calc, source, entity, ts)
    return _feature_frame(definition, result, source, label)


def _feature_frame(definition: FeatureDefinition, result: Any, source: pd.DataFrame, label: str) -> pd.DataFrame:
    """A calculation's result (a frame, or values aligned with ``source``) as entity, timestamp, value."""
    import pandas as pd

    name, entity, ts = definition.name, definition.entity, definition.timestamp
    if isinstance(result, pd.DataFrame):
        missing = [c for c in (entity, ts, name) if c not in result]
        if missing:
            raise DataError(f"feature '{name}': calculation {label} returned a frame without column '{missing[0]}'; "
                            f"return columns {entity}, {ts}, {name}")
        return result[[entity, ts, name]].reset_index(drop=True)
    try:
        if (isinstance(result, pd.Series) and len(result) == len(source) and not result.index.equals(source.index)
                and result.index.sort_values().equals(source.index.sort_values())):
            result = result.reindex(source.index)  # aligned by label, returned in another order
        values = pd.Series(result).reset_index(drop=True)
    except Exception:  # noqa: BLE001 - whatever the user returned, say what is expected
        raise DataError(f"feature '{name}': calculation {label} returned {type(result).__name__}; "
                        "return a Series aligned with the source rows or a DataFrame") from None
    if len(values) != len(source):
        raise DataError(f"feature '{name}': calculation {label} returned {len(values)} values for "
                        f"{len(source)} source rows; return one value per row")
    out = source[[entity, ts]].reset_index(drop=True)
    out[name] = values.to_numpy()
    return out


def _sql_calculation(name: str, expression: str, source, entity: str, ts: str):
    import duckdb

    if expression.lstrip().lower().startswith(("select", "with")):
        query = one_select(name, expression)
    else:
        _not_a_statement(name, expression)
        query = one_select(name, f"SELECT {quote_identifier(entity)}, {quote_identifier(ts)}, ({expression}) "
                                 f"AS {quote_identifier(name)} FROM src")
    # the calculation sees the source rows (``src``) only: no files, no network
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("src", source)
        return con.sql(query).df()
    except duckdb.Error as exc:
        raise DataError(f"feature '{name}': SQL calculation failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def _statements(name: str, query: str) -> list:
    import duckdb

    try:
        return duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ConfigError(f"feature '{name}': calculation is not valid SQL: {str(exc).splitlines()[0]}") from None


def _not_a_statement(name: str, expression: str) -> None:
    """An expression must not be a statement of its own (``COPY ...``, ``INSERT ...``)."""
    try:
        _statements(name, expression)
    except ConfigError:
        return  # not a statement: an expression, checked once wrapped in the SELECT
    one_select(name, expression)


def one_select(name: str, query: str) -> str:
    """``query`` if it is exactly one ``SELECT`` statement (a trailing ``;`` allowed), else a
    ``ConfigError`` naming the feature: a calculation must not run anything else."""
    import duckdb

    statements = _statements(name, query)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        got = (f"{len(statements)} statements" if len(statements) != 1
               else f"a {statements[0].type.name} statement")
        raise ConfigError(f"feature '{name}': calculation: expected one SELECT statement (or an expression over "
                          f"the source 'src'), got {got}")
    return statements[0].query.strip().rstrip(";")


def build_training_set(entities, definitions: Sequence[FeatureDefinition], source: pd.DataFrame, *,
                       entity: str | None = None, prediction_time: str) -> pd.DataFrame:
    """Compute each feature from ``source`` and join it point-in-time to ``entities``."""
    import pandas as pd

    from .pit import FeatureTable, point_in_time_join

    tables = []
    for d in definitions:
        frame = compute_feature(d, source)
        if d.available_at:
            if d.available_at not in source:
                raise DataError(f"feature '{d.name}': the source has no available_at column '{d.available_at}'")
            try:
                frame = frame.merge(source[[d.entity, d.timestamp, d.available_at]], on=[d.entity, d.timestamp],
                                    how="left", validate="many_to_one")
            except pd.errors.MergeError:
                raise DataError(f"feature '{d.name}': the source repeats ({d.entity}, {d.timestamp}) pairs, so "
                                f"'{d.available_at}' is ambiguous; deduplicate the source") from None
        frame = frame.rename(columns={d.entity: entity or d.entity, d.timestamp: f"__ts_{d.name}"})
        tables.append(FeatureTable(frame=frame, feature_time=f"__ts_{d.name}", columns=(d.name,),
                                   lag=d.lag, ttl=d.time_to_live, available_at=d.available_at or None))
    keys = entity or (definitions[0].entity if definitions else "")
    return point_in_time_join(entities, tables, entity=keys, prediction_time=prediction_time)


def check_point_in_time(definition: FeatureDefinition, source: pd.DataFrame, *, cutoffs: int = 5,
                        seed: int = 0, tolerance: float = 1e-9) -> list[Finding]:
    """Recompute the feature on only the source rows known at sampled availability times.

    A value available at ``t`` (its timestamp plus the availability lag) must come out the
    same from the source rows up to ``t``; if it does not, the calculation used later
    information (e.g. a window including the label day) and a finding names it.
    """
    import numpy as np
    import pandas as pd

    full = compute_feature(definition, source)
    ts_col, key, name = definition.timestamp, definition.entity, definition.name
    available = full[ts_col] + (definition.lag or pd.Timedelta(0))
    instants = np.sort(available.dropna().unique())
    if len(instants) == 0:
        return []
    picked = np.random.default_rng(seed).choice(instants, size=min(cutoffs, len(instants)), replace=False)
    checked = differing = 0
    example = None
    for cutoff in sorted(picked):
        cutoff = pd.Timestamp(cutoff)
        known = full[available <= cutoff]
        partial = compute_feature(definition, source[source[ts_col] <= cutoff])
        merged = known.merge(partial, on=[key, ts_col], how="left", suffixes=("", "__known"), indicator=True)
        same = values_equal(merged[name], merged[f"{name}__known"], tolerance)
        same &= (merged["_merge"] == "both").to_numpy()
        checked += len(merged)
        differing += int((~same).sum())
        if example is None and (~same).any():
            row = merged[~same].iloc[0]
            example = {"entity": jsonable(row[key]), "timestamp": str(row[ts_col]), "cutoff": str(cutoff),
                       "value": jsonable(row[name]), "value_from_known_data": jsonable(row[f"{name}__known"])}
    return [_future_information(definition, checked, differing, example)] if differing else []


def _future_information(definition: FeatureDefinition, checked: int, differing: int, example: Any) -> Finding:
    return Finding(
        check="feature.point_in_time", severity="error",
        message=(f"feature '{definition.name}' uses information from after its availability time: {differing} of "
                 f"{checked} values change when recomputed from only the data known at timestamp + "
                 f"availability_lag ({definition.availability_lag or '0'})"),
        evidence={"feature": definition.name, "checked": checked, "differing": differing, "example": example},
        fix="increase availability_lag to cover the window's end, or stamp values at the end of their window")
