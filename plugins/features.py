"""Features: definitions, the featurize stage, training sets, and the training-serving skew check.

* **Definitions** (:class:`FeatureDefinition`, record kind ``feature``) come from a YAML
  catalogue (``features: [{name, description, owner, entity, source, calculation, ...}]``)
  and are stored versioned: ``tether features apply CATALOG`` adds a new version only when
  a definition changed. ``tether features ls|show`` list them with the model versions that
  depend on each, found through lineage (definition -> feature set -> model -> version).
* **Calculations** are ``"module:function"`` (a function of the source DataFrame returning
  a Series aligned with it, or a frame of entity, timestamp and the feature) or a SQL
  expression evaluated by DuckDB over the source as ``src`` (window functions allowed).
* **Training sets** (:func:`build_training_set`) join each feature to labelled entity rows
  point-in-time correctly (:mod:`tether.plugins.pit`) with the definition's lag and TTL;
  :func:`check_point_in_time` recomputes a calculation on only the data available at its
  declared availability time and reports every value that changes (future information).
* **The featurize stage** fits the transform (the built-in imputers/scalers/one-hot, or a
  user transform ``"module:factory"``) on the training split only, validates the inputs
  against their definitions (range, allowed values, type, missing share, cardinality),
  stores the fitted transform as a content-addressed artifact and links the feature set
  to the definition versions. Batch scoring and serving load that same artifact.
* **The skew check** (:func:`skew_check`) computes features for sampled entities and
  times offline (point-in-time join) and online (the serving implementation, materialised
  to an online store and read back) and reports every mismatch beyond a tolerance; a
  chain runs it before deploy with ``policy: {skew_gate: {...}}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Sequence

import attrs

from tether import hookimpl
from tether.backends import Featurizer
from tether.errors import ConfigError, DataError, NotFoundError, StageError
from tether.records import FeatureSet, Finding, record, utcnow

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# --- Definitions ------------------------------------------------------------------------

CATALOGUE_KEYS = ("name", "description", "owner", "entity", "source", "calculation", "timestamp", "window",
                  "valid_range", "allowed_values", "refresh", "availability_lag", "available_at", "ttl", "tags",
                  "dtype", "max_missing_share", "max_cardinality")
DTYPES = ("float", "int", "bool", "string", "category", "timestamp")
_PY_CALC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


@record("feature")
class FeatureDefinition:
    """One version of a feature's definition, as declared in a catalogue.

    ``availability_lag`` is how long after ``timestamp`` the value becomes known (a
    duration such as ``"2d"``); ``available_at`` optionally names a column holding that
    instant per row; ``ttl`` is how old a value may be before it counts as missing.
    ``digest`` covers every declared field, so an unchanged definition keeps its version.
    """

    id: str
    name: str
    version: int
    digest: str
    description: str = ""
    owner: str = ""
    entity: str = ""
    source: str = ""
    calculation: str = ""
    timestamp: str = ""
    window: str = ""
    valid_range: tuple[float | None, float | None] | None = None
    allowed_values: tuple[Any, ...] = ()
    refresh: str = ""
    availability_lag: str = ""
    available_at: str = ""
    ttl: str = ""
    tags: tuple[str, ...] = ()
    dtype: str = ""
    max_missing_share: float | None = None
    max_cardinality: int | None = None
    catalogue: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)

    def declared(self) -> dict[str, Any]:
        """The catalogue fields (what ``digest`` covers)."""
        return {k: _plain(getattr(self, k)) for k in CATALOGUE_KEYS}

    @property
    def lag(self):
        from tether.plugins.pit import to_timedelta

        return to_timedelta(self.availability_lag or None, what=f"feature '{self.name}': availability_lag")

    @property
    def time_to_live(self):
        from tether.plugins.pit import to_timedelta

        return to_timedelta(self.ttl or None, what=f"feature '{self.name}': ttl")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def definition_digest(fields: Mapping[str, Any]) -> str:
    text = json.dumps({k: _plain(fields.get(k)) for k in CATALOGUE_KEYS}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def parse_catalogue(raw: Any, source: str = "catalogue") -> list[dict[str, Any]]:
    """Validate a parsed catalogue; returns each definition's fields. Errors name the key path."""
    from tether.errors import did_you_mean
    from tether.plugins.pit import to_timedelta

    if not isinstance(raw, dict) or not isinstance(raw.get("features"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'features' list")
    out, seen = [], set()
    for i, entry in enumerate(raw["features"]):
        where = f"{source}: features[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with at least 'name', got {entry!r}")
        unknown = [k for k in entry if k not in CATALOGUE_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}'{did_you_mean(str(unknown[0]), CATALOGUE_KEYS)} "
                              f"(allowed: {', '.join(CATALOGUE_KEYS)})")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name: expected a feature name (letters, digits, _ . -), got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name: feature '{name}' is defined twice")
        seen.add(name)
        where = f"{source}: features[{i}] ({name})"
        fields: dict[str, Any] = {"name": name}
        for key in ("description", "owner", "entity", "source", "calculation", "timestamp", "window", "refresh",
                    "available_at", "dtype"):
            value = entry.get(key, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
            fields[key] = value
        for key in ("availability_lag", "ttl"):
            value = entry.get(key)
            if value in (None, ""):
                fields[key] = ""
                continue
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected a duration such as '2d' or '6h', got {value!r}")
            to_timedelta(str(value), what=f"{where}.{key}:")
            fields[key] = str(value)
        if fields["dtype"] and fields["dtype"] not in DTYPES:
            raise ConfigError(f"{where}.dtype: {fields['dtype']!r} is not one of {', '.join(DTYPES)}")
        rng = entry.get("valid_range")
        if rng is not None:
            if (not isinstance(rng, list) or len(rng) != 2
                    or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in rng)):
                raise ConfigError(f"{where}.valid_range: expected [low, high] numbers (null for open), got {rng!r}")
            if None not in rng and rng[0] > rng[1]:
                raise ConfigError(f"{where}.valid_range: low {rng[0]} is above high {rng[1]}")
            rng = tuple(rng)
        fields["valid_range"] = rng
        allowed = entry.get("allowed_values") or []
        if not isinstance(allowed, list):
            raise ConfigError(f"{where}.allowed_values: expected a list, got {allowed!r}")
        fields["allowed_values"] = tuple(allowed)
        tags = entry.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{where}.tags: expected a list of strings, got {tags!r}")
        fields["tags"] = tuple(tags)
        share = entry.get("max_missing_share")
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
            raise ConfigError(f"{where}.max_missing_share: expected a share between 0 and 1, got {share!r}")
        fields["max_missing_share"] = None if share is None else float(share)
        card = entry.get("max_cardinality")
        if card is not None and (isinstance(card, bool) or not isinstance(card, int) or card < 1):
            raise ConfigError(f"{where}.max_cardinality: expected a positive integer, got {card!r}")
        fields["max_cardinality"] = card
        out.append(fields)
    return out


def load_catalogue(path: str | Path) -> list[FeatureDefinition]:
    """Read a catalogue file into (unversioned, ``version=0``) definitions."""
    from tether.config import read_yaml_file

    raw = read_yaml_file(path, "feature catalogue")
    return [definition_from_fields(f, catalogue=str(path)) for f in parse_catalogue(raw, f"feature catalogue '{path}'")]


def definition_from_fields(fields: Mapping[str, Any], *, version: int = 0, catalogue: str = "") -> FeatureDefinition:
    digest = definition_digest(fields)
    return FeatureDefinition(id=f"feature-{fields['name']}-{version}", version=version, digest=digest,
                             catalogue=catalogue, **{k: fields[k] for k in CATALOGUE_KEYS if k in fields})


def define(name: str, **fields: Any) -> FeatureDefinition:
    """A definition from Python: ``define("spend_7d", entity="customer_id", calculation=...)``."""
    raw = {"features": [{"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}]}
    return definition_from_fields(parse_catalogue(raw, f"feature '{name}'")[0])


def apply_definitions(store, definitions: Iterable[FeatureDefinition], *, run_id: str | None = None):
    """Store each definition as a new version unless the latest stored one is identical.

    Returns ``[(definition as stored, "created" | "updated" | "unchanged")]``.
    """
    results = []
    for definition in definitions:
        latest = latest_definition(store, definition.name)
        if latest is not None and latest.digest == definition.digest:
            results.append((latest, "unchanged"))
            continue

        def build(version: int, d=definition):
            return attrs.evolve(d, id=f"feature-{d.name}-{version}", version=version, created_at=utcnow())

        stored = store.put_versioned(build, kind="feature", name=definition.name, run_id=run_id)
        results.append((stored, "created" if latest is None else "updated"))
    return results


def latest_definition(store, name: str) -> FeatureDefinition | None:
    found = store.find("feature", name=name, limit=1)
    return found[0] if found else None


def all_definitions(store) -> list[FeatureDefinition]:
    """The latest version of every stored definition, by name."""
    latest: dict[str, FeatureDefinition] = {}
    for d in store.find("feature"):
        if d.name not in latest or d.version > latest[d.name].version:
            latest[d.name] = d
    return [latest[n] for n in sorted(latest)]


def models_using(store, name: str) -> list[dict[str, Any]]:
    """Model versions depending on any version of feature ``name``, through lineage."""
    used: dict[str, dict[str, Any]] = {}
    for definition in store.find("feature", name=name):
        for edge in store.lineage(definition.id)["downstream"]:
            if edge["kind"] == "model_version" and edge["child"] not in used:
                mv = store.get(edge["child"], kind="model_version")
                if mv is not None:
                    used[mv.id] = {"model_version": mv.id, "name": mv.name, "version": mv.version,
                                   "feature_version": definition.version, "status": mv.status}
    return sorted(used.values(), key=lambda r: (r["name"], r["version"]))


# --- Calculations -----------------------------------------------------------------------


def _import_callable(spec: str, what: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{what}: cannot import '{module_name}': {type(exc).__name__}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"{what}: '{module_name}' has no callable '{attr}'")
    return func


def compute_feature(definition: FeatureDefinition, source: pd.DataFrame,
                    calculation: str | Callable | None = None) -> pd.DataFrame:
    """Run a definition's calculation over ``source``: a frame of entity, timestamp, value.

    ``calculation`` overrides the definition's (the skew check passes the serving one).
    A failure is a :class:`DataError` naming the feature and the calculation.
    """
    import pandas as pd

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
    if callable(calc) or _PY_CALC.match(calc):
        func = calc if callable(calc) else _import_callable(calc, f"feature '{name}': calculation")
        try:
            result = func(source)
        except Exception as exc:
            raise DataError(f"feature '{name}': calculation {label} raised {type(exc).__name__}: {exc}") from None
    else:
        result = _sql_calculation(name, calc, source, entity, ts)
    if isinstance(result, pd.DataFrame):
        missing = [c for c in (entity, ts, name) if c not in result]
        if missing:
            raise DataError(f"feature '{name}': calculation {label} returned a frame without column '{missing[0]}'; "
                            f"return columns {entity}, {ts}, {name}")
        return result[[entity, ts, name]].reset_index(drop=True)
    try:
        if isinstance(result, pd.Series) and len(result) == len(source) and not result.index.equals(source.index):
            if result.index.sort_values().equals(source.index.sort_values()):
                result = result.reindex(source.index)  # aligned by label, returned in another order
        values = pd.Series(result).reset_index(drop=True)
    except Exception:
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

    from tether.plugins.pit import quote_identifier

    query = (expression if expression.lstrip().lower().startswith(("select", "with"))
             else f"SELECT {quote_identifier(entity)}, {quote_identifier(ts)}, ({expression}) "
                  f"AS {quote_identifier(name)} FROM src")
    con = duckdb.connect()
    try:
        con.register("src", source)
        return con.sql(query).df()
    except duckdb.Error as exc:
        raise DataError(f"feature '{name}': SQL calculation failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def build_training_set(entities, definitions: Sequence[FeatureDefinition], source: pd.DataFrame, *,
                       entity: str | None = None, prediction_time: str) -> pd.DataFrame:
    """Compute each feature from ``source`` and join it point-in-time to ``entities``."""
    import pandas as pd

    from tether.plugins.pit import FeatureTable, point_in_time_join

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
    ts_col, key = definition.timestamp, definition.entity
    lag = definition.lag or pd.Timedelta(0)
    available = full[ts_col] + lag
    instants = np.sort(available.dropna().unique())
    if len(instants) == 0:
        return []
    rng = np.random.default_rng(seed)
    picked = rng.choice(instants, size=min(cutoffs, len(instants)), replace=False)
    checked = differing = 0
    example = None
    for cutoff in sorted(picked):
        cutoff = pd.Timestamp(cutoff)
        known = full[available <= cutoff]
        partial = compute_feature(definition, source[source[ts_col] <= cutoff])
        merged = known.merge(partial, on=[key, ts_col], how="left", suffixes=("", "__known"), indicator=True)
        same = _equal(merged[definition.name], merged[f"{definition.name}__known"], tolerance)
        same &= (merged["_merge"] == "both").to_numpy()
        checked += len(merged)
        differing += int((~same).sum())
        if example is None and (~same).any():
            row = merged[~same].iloc[0]
            example = {"entity": _jsonable(row[key]), "timestamp": str(row[ts_col]), "cutoff": str(cutoff),
                       "value": _jsonable(row[definition.name]), "value_from_known_data": _jsonable(row[f"{definition.name}__known"])}
    if not differing:
        return []
    return [Finding(
        check="feature.point_in_time", severity="error",
        message=(f"feature '{definition.name}' uses information from after its availability time: {differing} of "
                 f"{checked} values change when recomputed from only the data known at timestamp + "
                 f"availability_lag ({definition.availability_lag or '0'})"),
        evidence={"feature": definition.name, "checked": checked, "differing": differing, "example": example},
        fix="increase availability_lag to cover the window's end, or stamp values at the end of their window")]


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else (value if isinstance(value, (int, float, str, bool)) else str(value))


def _equal(a, b, tolerance: float):
    """Element-wise equality: both missing is equal; numbers within ``tolerance``."""
    import numpy as np
    import pandas as pd

    a, b = pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    same = a_na & b_na
    both = ~a_na & ~b_na
    an, bn = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    numeric = both & an.notna().to_numpy() & bn.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        close = np.abs(an.to_numpy(dtype="float64", na_value=np.nan) - bn.to_numpy(dtype="float64", na_value=np.nan))
        close = close <= tolerance + tolerance * np.abs(bn.to_numpy(dtype="float64", na_value=np.nan))
    same |= numeric & close
    other = both & ~numeric
    same[other] = (a[other].astype(str) == b[other].astype(str)).to_numpy()
    return same


# --- Validation findings ------------------------------------------------------------------

_KINDS = {"float": "fiu", "int": "iu", "bool": "b", "timestamp": "M"}


def validate_features(frame: pd.DataFrame, definitions: Iterable[FeatureDefinition]) -> list[Finding]:
    """Range, allowed values, type, missing share and cardinality against the definitions."""
    import pandas as pd

    findings = []
    for d in definitions:
        if d.name not in frame:
            continue
        col = frame[d.name]
        n = len(col)
        present = col.dropna()

        def add(check: str, message: str, fix: str, **evidence):
            findings.append(Finding(check=f"feature.{check}", severity="error", message=message,
                                    evidence={"feature": d.name, "definition": d.id, **evidence}, fix=fix))

        if d.dtype:
            kind = col.dtype.kind
            ok = (kind in _KINDS[d.dtype] if d.dtype in _KINDS else
                  (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col.dtype)
                   or kind == "O"))
            if d.dtype == "int" and kind == "f":  # pandas turns ints with gaps into floats
                ok = bool((present == present.round()).all())
            if not ok:
                add("type", f"feature '{d.name}' has type {col.dtype}, its definition says {d.dtype}",
                    "fix the calculation or the definition's dtype", dtype=str(col.dtype), expected=d.dtype)
                continue
        if d.valid_range is not None and len(present):
            numbers = pd.to_numeric(present, errors="coerce")
            lo, hi = d.valid_range
            outside = ((numbers < lo) if lo is not None else False) | ((numbers > hi) if hi is not None else False)
            outside = outside | numbers.isna()
            if outside.any():
                add("range", f"feature '{d.name}': {int(outside.sum())} of {n} values are outside "
                    f"[{lo}, {hi}] (seen {_jsonable(numbers.min())} .. {_jsonable(numbers.max())})",
                    "fix the source data or widen valid_range", outside=int(outside.sum()),
                    min=_jsonable(numbers.min()), max=_jsonable(numbers.max()), valid_range=[lo, hi])
        if d.allowed_values and len(present):
            allowed = {str(v) for v in d.allowed_values}
            bad = present[~present.astype(str).isin(allowed)]
            if len(bad):
                add("allowed_values", f"feature '{d.name}': {len(bad)} of {n} values are not allowed, e.g. "
                    f"{sorted(map(str, bad.unique()))[:5]}", "map them to allowed values or extend allowed_values",
                    not_allowed=len(bad), examples=sorted(map(str, bad.unique()))[:5])
        share = float(col.isna().mean()) if n else 0.0
        if d.max_missing_share is not None and share > d.max_missing_share:
            add("missing_share", f"feature '{d.name}': {share:.1%} of values are missing, above the maximum "
                f"{d.max_missing_share:.1%}", "fix the source or raise max_missing_share",
                missing_share=share, max_missing_share=d.max_missing_share)
        if d.max_cardinality is not None:
            distinct = int(present.nunique())
            if distinct > d.max_cardinality:
                add("cardinality", f"feature '{d.name}' has {distinct} distinct values, above the maximum "
                    f"{d.max_cardinality}", "group rare values or raise max_cardinality",
                    distinct=distinct, max_cardinality=d.max_cardinality)
    return findings


# --- The featurize stage -------------------------------------------------------------------


class UserTransform:
    """A user transform (``fit``/``transform``) bound to its input columns.

    Gives batch scoring and serving the same interface as the built-in transform:
    ``feature_names_in_``, ``transform(frame)`` and ``get_feature_names_out()``.
    """

    def __init__(self, inner: Any, columns: Sequence[str]) -> None:
        self.inner = inner
        self.columns = list(columns)

    def fit(self, X, y=None):
        import numpy as np

        self.inner.fit(X[self.columns])
        self.feature_names_in_ = np.array(self.columns, dtype=object)
        return self

    def transform(self, X):
        import numpy as np

        out = self.inner.transform(X[self.columns])
        return out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)

    def get_feature_names_out(self, input_features=None):
        names = getattr(self.inner, "get_feature_names_out", None)
        if callable(names):
            return [str(n) for n in names()]
        probe = getattr(self, "_n_out", None)
        return [f"f{i}" for i in range(probe or 0)]


@attrs.frozen(kw_only=True)
class SklearnFeaturizer(Featurizer):
    """Impute + scale numeric columns, impute + one-hot encode categorical ones; or the
    user transform ``transform: "module:factory"`` (a factory returning an unfitted object
    with ``fit``/``transform``) over ``columns``.

    ``catalogue`` (a YAML file, relative to the chain) is applied to the metadata store and,
    with the definitions already stored, validates the input columns; ``fail_on_findings``
    makes an ``error`` finding fail the stage.
    """

    name: ClassVar[str] = "sklearn"
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    label: str | None = None
    transform: str | None = None
    columns: tuple[str, ...] = ()
    catalogue: str | None = None
    validate: bool = True
    fail_on_findings: bool = True

    def build(self):
        if self.transform:
            if not _PY_CALC.match(self.transform):
                raise ConfigError(f"featurize.params.transform: expected 'module:factory', got {self.transform!r}")
            inner = _import_callable(self.transform, "featurize.params.transform")()
            if not (callable(getattr(inner, "fit", None)) and callable(getattr(inner, "transform", None))):
                raise ConfigError(f"featurize.params.transform: {self.transform}() returned {type(inner).__name__}, "
                                  "which has no fit/transform methods")
            _refuse_fitted(inner, self.transform)
            return UserTransform(inner, self.columns)
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        parts = []
        if self.numeric:
            parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(self.numeric)))
        if self.categorical:
            parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                               OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                          list(self.categorical)))
        if not parts:
            raise ConfigError("featurize.params: name the input columns in numeric/categorical, "
                              "or give transform: 'module:factory' with columns")
        return ColumnTransformer(parts, verbose_feature_names_out=False)

    def preflight(self, *, context) -> None:
        """Before the run: the catalogue must be valid, and so must ``policy.skew_gate``."""
        if self.catalogue:
            load_catalogue(context.resolve_path(self.catalogue))
        gate = (context.policy or {}).get("skew_gate")
        if gate:
            _check_gate_config(gate)
            if gate.get("catalogue"):
                load_catalogue(context.resolve_path(gate["catalogue"]))

    @property
    def input_columns(self) -> list[str]:
        if self.transform:
            if not self.columns:
                raise ConfigError("featurize.params.columns: a user transform needs its input columns listed")
            return list(self.columns)
        return [*self.numeric, *self.categorical]

    @property
    def label_column(self) -> str | None:
        return self.label


def _refuse_fitted(transform: Any, where: str) -> None:
    """A transform fitted before the stage could have seen every row: refuse it."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - sklearn is a core dependency
        return
    if isinstance(transform, BaseEstimator):
        try:
            check_is_fitted(transform)
        except NotFittedError:
            return
        except TypeError:
            return
        raise ConfigError(f"featurize.params.transform: {where}() returned an already fitted {type(transform).__name__}; "
                          "return it unfitted: tether fits it on the training split only")


def fit_transform_splits(featurizer, frame, splits):
    """Fit on the rows labelled ``train`` only; transform every split.

    This is the only place the stage fits anything, and it is handed the training rows
    alone; there is no parameter that widens the rows used for fitting.
    """
    import numpy as np
    import pandas as pd

    columns = featurizer.input_columns
    label = featurizer.label_column
    missing = [c for c in columns + ([label] if label else []) if c not in frame]
    if missing:
        raise DataError(f"featurize: columns {missing} are not in the snapshot")
    splits = np.asarray(splits)
    if len(splits) != len(frame):
        raise DataError(f"featurize: the split assigns {len(splits)} rows but the snapshot has {len(frame)}")
    train = frame[splits == "train"]
    if train.empty:
        raise DataError("featurize: the split has no training rows")
    transform = featurizer.build()
    try:
        transform = transform.fit(train[columns]) or transform
    except Exception as exc:
        raise StageError(f"featurize: fitting the transform on the training split failed: "
                         f"{type(exc).__name__}: {exc}") from None
    matrices, names = {}, None
    for split_name in ("train", "validation", "test"):
        part = frame[splits == split_name]
        if part.empty:
            continue
        try:
            values = np.asarray(transform.transform(part[columns]))
        except Exception as exc:
            raise StageError(f"featurize: transforming the {split_name} split failed: {type(exc).__name__}: {exc}") from None
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if names is None:
            names = [str(n) for n in transform.get_feature_names_out()] or [f"f{i}" for i in range(values.shape[1])]
            if isinstance(transform, UserTransform) and len(names) != values.shape[1]:
                names = [f"f{i}" for i in range(values.shape[1])]
                transform._n_out = values.shape[1]
        out = pd.DataFrame(values, columns=names)
        if label:
            out[label] = part[label].to_numpy()
        matrices[split_name] = out
    return transform, names, matrices


@hookimpl(trylast=True)
def tether_featurize(snapshot, split, stage, context):
    featurizer = context.backend(stage)
    store = context.store
    definitions: list[FeatureDefinition] = []
    if featurizer.catalogue:
        loaded = load_catalogue(context.resolve_path(featurizer.catalogue))
        definitions = [d for d, _ in apply_definitions(store, loaded, run_id=context.run.id if context.run else None)]
    frame = context.workspace.read_snapshot(snapshot)
    columns = featurizer.input_columns
    by_name = {d.name: d for d in definitions}
    for name in columns:
        if name not in by_name:
            stored = latest_definition(store, name)
            if stored is not None:
                by_name[name] = stored
    used = [by_name[c] for c in columns if c in by_name]
    findings = validate_features(frame, used) if featurizer.validate else []
    errors = [f for f in findings if f.severity == "error"]
    if errors and featurizer.fail_on_findings:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise StageError(f"featurize: {errors[0].message}{more}; set fail_on_findings: false to record them only")
    assignment = context.workspace.read_frame(split.assignment, columns=["split"])["split"].to_numpy()
    transform, names, matrices = fit_transform_splits(featurizer, frame, assignment)
    transform_ref = context.workspace.put_object(transform)
    refs = {name: context.workspace.put_frame(matrix) for name, matrix in matrices.items()}
    inner = transform.inner if isinstance(transform, UserTransform) else transform
    feature_set = FeatureSet(
        id="feat-" + transform_ref.digest.split(":")[1][:16], snapshot_id=snapshot.id, split_id=split.id,
        featurizer=featurizer.name, params=json.loads(json.dumps(attrs.asdict(featurizer))), transform=transform_ref,
        feature_names=tuple(names), matrices=refs, label=featurizer.label, findings=tuple(findings),
        input_columns=tuple(columns), definition_ids=tuple(d.id for d in used),
        transform_class=f"{type(inner).__module__}.{type(inner).__qualname__}")
    # Written here with its definition edges; the runner's later put of the same id only
    # adds the snapshot/split edges.
    store.put(feature_set, parents=[(d.id, "feature_definition") for d in used] + [(snapshot.id, "snapshot"),
                                                                                    (split.id, "split")],
              run_id=context.run.id if context.run else None)
    return feature_set


def load_transform(workspace, model_version_id: str):
    """The fitted transform a model version was trained with: what batch scoring and an
    online serving process both load (the same content-addressed artifact, digest-checked)."""
    mv = workspace.store.get(model_version_id, kind="model_version")
    if mv is None:
        raise NotFoundError(f"no model version '{model_version_id}' in {workspace.root}")
    if not mv.feature_set_id:
        raise NotFoundError(f"model version '{model_version_id}' has no feature set")
    features = workspace.store.get(mv.feature_set_id, kind="features")
    if features is None:
        raise NotFoundError(f"feature set '{mv.feature_set_id}' of '{model_version_id}' is not in {workspace.root}")
    return workspace.load_object(features.transform)


# --- Training-serving skew -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SkewReport:
    """Offline vs online values for sampled entities and times, per feature."""

    tolerance: float
    checked: dict[str, int]
    mismatches: dict[str, int]
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return not any(self.mismatches.values())

    def findings(self) -> list[Finding]:
        out = []
        for name, count in self.mismatches.items():
            if count:
                examples = [e for e in self.examples if e["feature"] == name][:3]
                out.append(Finding(check="feature.skew", severity="error",
                                   message=(f"feature '{name}': {count} of {self.checked[name]} sampled values differ "
                                            f"between training (offline) and serving (online) beyond {self.tolerance}"),
                                   evidence={"feature": name, "mismatches": count, "checked": self.checked[name],
                                             "examples": examples},
                                   fix="make the serving implementation match the feature definition"))
        return out

    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "tolerance": self.tolerance, "checked": dict(self.checked),
                "mismatches": dict(self.mismatches), "examples": list(self.examples[:10])}


def skew_check(definitions: Sequence[FeatureDefinition], source: pd.DataFrame, *, online_store,
               serving: Mapping[str, str | Callable] | None = None, entities: int = 50, timestamps: int = 3,
               tolerance: float = 1e-9, seed: int = 0, view: str | None = None) -> SkewReport:
    """Compare the offline path with the online path for sampled entities and times.

    Offline: each feature computed from the whole source and joined point-in-time (lag,
    TTL). Online: for each sampled time ``t``, the serving calculation (``serving[name]``,
    default the definition's) over the source rows up to ``t``, materialised to
    ``online_store`` as of ``t`` and read back with ``get_online_features(now=t)``.
    """
    import uuid

    import numpy as np
    import pandas as pd

    if not definitions:
        raise ConfigError("skew check: no feature definitions to check")
    serving = dict(serving or {})
    unknown = [n for n in serving if n not in {d.name for d in definitions}]
    if unknown:
        raise ConfigError(f"skew check: serving names unknown feature '{unknown[0]}'")
    key, ts_col = definitions[0].entity, definitions[0].timestamp
    for d in definitions:
        if (d.entity, d.timestamp) != (key, ts_col):
            raise ConfigError(f"skew check: feature '{d.name}' has entity/timestamp ({d.entity}, {d.timestamp}); "
                              f"check features of one entity ({key}, {ts_col}) at a time")
    if key not in source or ts_col not in source:
        raise DataError(f"skew check: the source needs columns '{key}' and '{ts_col}'")
    rng = np.random.default_rng(seed)
    ids = pd.Series(source[key].dropna().unique())
    sample_ids = ids.sample(n=min(entities, len(ids)), random_state=int(rng.integers(2**31))).tolist()
    times = source[ts_col].dropna()
    qs = np.sort(rng.uniform(0.2, 1.0, size=timestamps))
    instants = [times.quantile(q) for q in qs]
    probe = pd.DataFrame([(k, t) for t in instants for k in sample_ids], columns=[key, "__at"])
    if getattr(times.dt, "tz", None) is not None:
        probe["__at"] = pd.to_datetime(probe["__at"], utc=True).dt.tz_convert(times.dt.tz)
    offline = build_training_set(probe, definitions, source, entity=key, prediction_time="__at")
    view = view or f"skew-{uuid.uuid4().hex[:12]}"
    online_parts = []
    try:
        for t in instants:
            known = source[source[ts_col] <= t]
            for d in definitions:
                computed = compute_feature(d, known, serving.get(d.name))
                online_store.materialize(computed, view=view, entity=key, feature_time=ts_col,
                                         features=[d.name], as_of=t, lag=d.lag)
            got = online_store.get_online_features(sample_ids, view=view, features=[d.name for d in definitions],
                                                   now=t, ttl={d.name: d.time_to_live for d in definitions})
            got["__at"] = t
            online_parts.append(got)
    finally:
        try:
            online_store.drop_view(view)
        except Exception:  # noqa: BLE001 - cleanup must not hide the real error
            pass
    online = pd.concat(online_parts, ignore_index=True)
    checked, mismatches, examples = {}, {}, []
    for d in definitions:
        on = online[d.name] if d.name in online else pd.Series([None] * len(offline))
        same = _equal(offline[d.name], on, tolerance)
        checked[d.name] = len(same)
        mismatches[d.name] = int((~same).sum())
        for i in np.flatnonzero(~same)[:5]:
            examples.append({"feature": d.name, "entity": _jsonable(offline[key].iloc[i]),
                             "at": str(offline["__at"].iloc[i]), "offline": _jsonable(offline[d.name].iloc[i]),
                             "online": _jsonable(on.iloc[i])})
    return SkewReport(tolerance=tolerance, checked=checked, mismatches=mismatches, examples=tuple(examples))


def load_source(spec: str, *, base_dir: Path | None = None, workspace=None) -> pd.DataFrame:
    """A source frame from ``module:function``, a Parquet/CSV path, or a snapshot id."""
    import pandas as pd

    if _PY_CALC.match(spec):
        frame = _import_callable(spec, "source")()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"source {spec} returned {type(frame).__name__}, not a DataFrame")
        return frame
    if workspace is not None and spec.startswith("snap"):
        snapshot = workspace.store.get(spec, kind="snapshot")
        if snapshot is not None:
            return workspace.read_snapshot(snapshot)
    path = Path(spec)
    path = path if path.is_absolute() or base_dir is None else base_dir / path
    if not path.exists():
        raise DataError(f"source '{spec}' is not a module:function, a snapshot id or an existing file")
    try:
        return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"source '{path}' cannot be read: {exc}") from None


GATE_KEYS = ("catalogue", "features", "source", "serving", "online_store", "entities", "timestamps", "tolerance",
             "seed")


def _check_gate_config(config: Any) -> None:
    from tether.errors import did_you_mean

    if not isinstance(config, Mapping):
        raise ConfigError(f"policy.skew_gate: expected a mapping, got {config!r}")
    extra = [k for k in config if k not in GATE_KEYS]
    if extra:
        raise ConfigError(f"policy.skew_gate: unknown key '{extra[0]}'{did_you_mean(str(extra[0]), GATE_KEYS)} "
                          f"(allowed: {', '.join(GATE_KEYS)})")
    if not config.get("source"):
        raise ConfigError("policy.skew_gate.source: name the source (module:function, file or snapshot id)")
    if not isinstance(config.get("serving") or {}, Mapping):
        raise ConfigError("policy.skew_gate.serving: expected a mapping of feature -> calculation")
    if not isinstance(config.get("online_store") or {}, Mapping):
        raise ConfigError("policy.skew_gate.online_store: expected {plugin: NAME, params: {...}}")


def run_skew_gate(config: Mapping[str, Any], *, context) -> SkewReport:
    """``policy.skew_gate``: the skew check a chain runs before deploy (see docs/features.md)."""
    from tether.plugins.online_store import open_online_store

    _check_gate_config(config)
    if config.get("catalogue"):
        definitions = load_catalogue(context.resolve_path(config["catalogue"]))
    else:
        definitions = all_definitions(context.store)
    wanted = config.get("features")
    if wanted:
        known = {d.name: d for d in definitions}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise ConfigError(f"policy.skew_gate.features: unknown feature '{missing[0]}'")
        definitions = [known[n] for n in wanted]
    definitions = [d for d in definitions if d.calculation]
    source = load_source(str(config["source"]), base_dir=context.base_dir, workspace=context.workspace)
    store_cfg = config.get("online_store") or {}
    store = open_online_store(context.host, store_cfg.get("plugin", "sqlite"), store_cfg.get("params"),
                              workspace=context.workspace.root)
    try:
        return skew_check(definitions, source, online_store=store, serving=config.get("serving"),
                          entities=int(config.get("entities", 50)), timestamps=int(config.get("timestamps", 3)),
                          tolerance=float(config.get("tolerance", 1e-9)), seed=int(config.get("seed", 0)))
    finally:
        close = getattr(store, "close", None)
        if close:
            close()


@hookimpl(wrapper=True)
def tether_deploy(model_version, stage, context):
    """With ``policy.skew_gate``, check training-serving skew before any deployer runs."""
    config = (context.policy or {}).get("skew_gate")
    if not config:
        return (yield)
    report = run_skew_gate(config, context=context)
    if not report.passed:
        bad = ", ".join(f"{n} ({c}/{report.checked[n]})" for n, c in report.mismatches.items() if c)
        raise StageError(f"skew gate: training and serving disagree beyond {report.tolerance} for {bad}; "
                         f"not deploying {model_version.id}")
    context.log.info("skew gate passed", checked=sum(report.checked.values()))
    deployment = yield
    if deployment is not None:
        deployment = attrs.evolve(deployment, details={**deployment.details, "skew_check": report.summary()})
    return deployment


# --- Backends and CLI ------------------------------------------------------------------------


@hookimpl
def tether_add_backends(backends):
    backends.add(SklearnFeaturizer)


@hookimpl
def tether_add_commands(cli):
    import click

    from tether.cli import emit, host_of, json_option, open_workspace, workspace_option

    @cli.group()
    def features() -> None:
        """Feature definitions, the models using them, and the training-serving skew check."""

    @features.command("apply")
    @click.argument("catalogue", type=click.Path(dir_okay=False))
    @workspace_option
    @json_option
    @click.pass_context
    def features_apply(ctx, catalogue, workspace, json_output):
        """Store the definitions in CATALOGUE (a new version only for changed ones)."""
        ws = open_workspace(ctx, workspace)
        results = apply_definitions(ws.store, load_catalogue(catalogue))
        rows = [{"name": d.name, "version": d.version, "id": d.id, "status": status} for d, status in results]

        def human():
            for r in rows:
                click.echo(f"{r['status']:<9}  {r['name']}  v{r['version']}")

        emit(ctx, rows, human)

    @features.command("ls")
    @workspace_option
    @json_option
    @click.pass_context
    def features_ls(ctx, workspace, json_output):
        """List the latest version of every feature with the model versions using it."""
        ws = open_workspace(ctx, workspace)
        rows = []
        for d in all_definitions(ws.store):
            models = models_using(ws.store, d.name)
            rows.append({"name": d.name, "version": d.version, "entity": d.entity, "owner": d.owner,
                         "availability_lag": d.availability_lag, "ttl": d.ttl, "tags": list(d.tags),
                         "models": [m["model_version"] for m in models]})

        def human():
            if not rows:
                click.echo(f"no feature definitions in {ws.root} (see `tether features apply`)")
            for r in rows:
                used = ", ".join(r["models"]) or "-"
                click.echo(f"{r['name']:<24} v{r['version']:<3} entity={r['entity'] or '-':<14} "
                           f"lag={r['availability_lag'] or '0':<5} owner={r['owner'] or '-':<12} models: {used}")

        emit(ctx, rows, human)

    @features.command("show")
    @click.argument("name")
    @workspace_option
    @json_option
    @click.pass_context
    def features_show(ctx, name, workspace, json_output):
        """Explain feature NAME: its definition, versions, and the model versions depending on it."""
        from tether.errors import did_you_mean

        ws = open_workspace(ctx, workspace)
        versions = ws.store.find("feature", name=name)
        if not versions:
            names = [d.name for d in all_definitions(ws.store)]
            raise NotFoundError(f"no feature '{name}' in {ws.root}{did_you_mean(name, names)} (see `tether features ls`)")
        latest = max(versions, key=lambda d: d.version)
        models = models_using(ws.store, name)
        data = {"definition": latest, "versions": sorted(d.version for d in versions), "models": models}

        def human():
            click.echo(f"feature {latest.name} v{latest.version}  ({latest.id})")
            for key in CATALOGUE_KEYS[1:]:
                value = getattr(latest, key)
                if value not in ("", None, (), []):
                    click.echo(f"  {key:<18} {list(value) if isinstance(value, tuple) else value}")
            click.echo(f"  versions           {', '.join(map(str, data['versions']))}")
            click.echo("  used by:" if models else "  used by:           (no model version yet)")
            for m in models:
                click.echo(f"    {m['model_version']}  ({m['name']} v{m['version']}, feature v{m['feature_version']}, "
                           f"{m['status']})")

        emit(ctx, data, human)

    @features.command("skew")
    @click.option("--catalogue", "catalogue", type=click.Path(dir_okay=False),
                  help="Definitions to check (default: the stored ones).")
    @click.option("--source", required=True, help="Source rows: module:function, a Parquet/CSV file or a snapshot id.")
    @click.option("--serving", multiple=True, metavar="FEATURE=CALCULATION",
                  help="The serving implementation of a feature, if it differs from the definition.")
    @click.option("--feature", "feature_names", multiple=True, help="Only these features.")
    @click.option("--online-store", "store_plugin", default="sqlite", show_default=True)
    @click.option("--entities", default=50, show_default=True)
    @click.option("--timestamps", default=3, show_default=True)
    @click.option("--tolerance", default=1e-9, show_default=True)
    @workspace_option
    @json_option
    @click.pass_context
    def features_skew(ctx, catalogue, source, serving, feature_names, store_plugin, entities, timestamps,
                      tolerance, workspace, json_output):
        """Compare offline (training) and online (serving) feature values; exit 1 on mismatches."""
        import sys

        from tether.context import RunContext

        overrides = {}
        for item in serving:
            name, sep, calc = item.partition("=")
            if not sep or not name or not calc:
                raise click.BadParameter(f"expected FEATURE=CALCULATION, got {item!r}", param_hint="--serving")
            overrides[name] = calc
        ws = open_workspace(ctx, workspace)
        context = RunContext(host=host_of(ctx), workspace=ws)
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        config = {"source": source, "serving": overrides, "online_store": {"plugin": store_plugin},
                  "entities": entities, "timestamps": timestamps, "tolerance": tolerance}
        if catalogue:
            config["catalogue"] = str(Path(catalogue).resolve())
        if feature_names:
            config["features"] = list(feature_names)
        report = run_skew_gate(config, context=context)

        def human():
            for name in report.checked:
                state = "ok" if not report.mismatches[name] else f"{report.mismatches[name]} mismatches"
                click.echo(f"{name:<24} {report.checked[name]:>6} checked  {state}")
            for e in report.examples[:10]:
                click.echo(f"  {e['feature']}: entity {e['entity']} at {e['at']}: offline {e['offline']!r}, "
                           f"online {e['online']!r}")
            click.echo("passed" if report.passed else f"FAILED (tolerance {report.tolerance})")

        emit(ctx, report.summary(), human)
        if not report.passed:
            bad = ", ".join(f"{n} ({c}/{report.checked[n]})" for n, c in report.mismatches.items() if c)
            raise StageError(f"training-serving skew beyond {report.tolerance} in {bad}")
