"""The logic every online store shares, on top of the ``online_store`` contract
(:class:`tether.backends.OnlineStore`) only: :func:`materialize`, :func:`get_online_features`,
:func:`open_online_store`, and the row encoding they use."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from tether.errors import ConfigError, DataError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from tether.backends import OnlineStore

#: One stored value: (entity id, feature, JSON-encoded value, feature timestamp in ns).
Row = tuple[str, str, str, int]


def _entity_key(value: Any) -> str:
    """Entity ids are stored as text: ``42`` and ``"42"`` name the same entity."""
    if hasattr(value, "item"):
        value = value.item()
    return str(value)


def _json_default(value: Any):
    import numpy as np
    import pandas as pd

    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} values cannot be stored online")


def encode_value(value: Any, *, feature: str) -> str:
    """A feature value as JSON text; NaN and NA become ``null``."""
    import pandas as pd

    if value is None or (not isinstance(value, (str, bytes, list, dict)) and pd.isna(value)):
        return "null"
    if hasattr(value, "item") and not isinstance(value, (pd.Timestamp, pd.Timedelta)):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        raise DataError(f"feature '{feature}' has an infinite value, which JSON cannot hold; clip it first")
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"feature '{feature}': value {value!r} cannot be stored online: {exc}") from None


def latest_rows(frame: Any, *, entity: str, feature_time: str, features: Sequence[str] | None = None,
                as_of: Any = None, lag: Any = None) -> tuple[list[Row], list[str]]:
    """Per entity and feature, the latest available row, encoded; checks the input first."""
    import numpy as np
    import pandas as pd
    from tether.plugins.features.pit import to_timedelta

    if not isinstance(frame, pd.DataFrame):
        import pyarrow as pa

        if not isinstance(frame, pa.Table):
            raise DataError(f"materialize needs a pandas DataFrame or Arrow table, got {type(frame).__name__}")
        frame = frame.to_pandas()
    missing = [c for c in (entity, feature_time) if c not in frame]
    if missing:
        raise DataError(f"feature frame has no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})")
    names = list(features) if features is not None else [c for c in frame.columns if c not in (entity, feature_time)]
    unknown = [c for c in names if c not in frame]
    if unknown:
        raise DataError(f"feature frame has no feature column {unknown[0]!r}")
    if not names:
        raise DataError("feature frame has no feature columns to materialize")
    ts = frame[feature_time]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise DataError(f"column '{feature_time}' must hold timestamps, got {ts.dtype}")
    if ts.isna().any():
        raise DataError(f"column '{feature_time}' has {int(ts.isna().sum())} null feature timestamps; "
                        "drop or fill them before materializing")
    if frame[entity].isna().any():
        raise DataError(f"entity column '{entity}' has {int(frame[entity].isna().sum())} nulls; drop those rows")
    dup = frame.duplicated([entity, feature_time])
    if dup.any():
        first = frame.loc[dup, [entity, feature_time]].iloc[0].tolist()
        raise DataError(f"{int(dup.sum())} rows repeat an ({entity}, {feature_time}) pair, e.g. {first}; "
                        "the value at that time is ambiguous: deduplicate the feature frame")
    ts_utc = ts.dt.tz_convert("UTC") if ts.dt.tz is not None else ts.dt.tz_localize("UTC")
    ts_ns = ts_utc.astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    lags = lag if isinstance(lag, Mapping) else {c: lag for c in names}
    cutoff = None
    if as_of is not None:
        as_of = pd.Timestamp(as_of)
        cutoff = (as_of.tz_convert("UTC") if as_of.tzinfo else as_of.tz_localize("UTC")).value
    keys = frame[entity].map(_entity_key).to_numpy()
    rows: list[Row] = []
    for name in names:
        usable = np.ones(len(frame), dtype=bool)
        if cutoff is not None:
            delta = to_timedelta(lags.get(name), what=f"lag of '{name}'")
            usable = ts_ns + (delta.value if delta is not None else 0) <= cutoff
        if not usable.any():
            continue
        part = pd.DataFrame({"k": keys[usable], "t": ts_ns[usable], "v": frame[name].to_numpy(dtype=object)[usable]})
        latest = part.sort_values("t", kind="stable").drop_duplicates("k", keep="last")
        rows.extend((k, name, encode_value(v, feature=name), int(t))
                    for k, v, t in zip(latest["k"], latest["v"], latest["t"]))
    return rows, names


def materialize(store: OnlineStore, frame: Any, *, view: str, entity: str, feature_time: str,
                features: Sequence[str] | None = None, as_of: Any = None, lag: Any = None) -> dict[str, int]:
    """Write the latest available value per entity and feature of ``frame`` to ``store``
    (any ``OnlineStore``: this uses only its contract); returns counts.

    ``written`` counts values that changed, ``unchanged`` those already as new or newer.
    Nothing is written unless every value could be encoded and the store is reachable.
    """
    if not view or ":" in view:
        raise ConfigError(f"online view name {view!r} must be non-empty and contain no ':'")
    rows, names = latest_rows(frame, entity=entity, feature_time=feature_time, features=features,
                              as_of=as_of, lag=lag)
    store.check()
    written = store.write(view, rows, entity=entity, features=names)
    return {"written": written, "unchanged": len(rows) - written, "entities": len({r[0] for r in rows})}


def get_online_features(store: OnlineStore, entity_ids: Iterable[Any], *, view: str,
                        features: Sequence[str] | None = None, now: Any = None, ttl: Any = None,
                        strict: bool = False) -> pd.DataFrame:
    """One row per requested entity: values, ``<f>__timestamp`` and ``<f>__age`` at ``now``."""
    import numpy as np
    import pandas as pd
    from tether.plugins.features.pit import to_timedelta

    ids = list(entity_ids)
    meta = store.view_info(view)
    if meta is None:
        raise NotFoundError(f"online view '{view}' has never been materialized in {store.describe()}")
    names = list(features) if features is not None else list(meta["features"])
    unknown = [f for f in names if f not in meta["features"]]
    if unknown:
        raise NotFoundError(f"online view '{view}' has no feature '{unknown[0]}' "
                            f"(features: {', '.join(meta['features'])})")
    keys = [_entity_key(i) for i in ids]
    found = store.read(view, keys, names)
    if strict:
        absent = [i for i, k in zip(ids, keys) if not any((k, f) in found for f in names)]
        if absent:
            raise NotFoundError(f"online view '{view}' has no values for entities {absent[:5]}"
                                f"{' ...' if len(absent) > 5 else ''}; materialize them first")
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now_ts = now_ts.tz_convert("UTC") if now_ts.tzinfo else now_ts.tz_localize("UTC")
    ttls = ttl if isinstance(ttl, Mapping) else {f: ttl for f in names}
    out: dict[str, Any] = {meta["entity"]: ids}
    for name in names:
        limit = to_timedelta(ttls.get(name), what=f"ttl of '{name}'")
        values, stamps = [], []
        for k in keys:
            hit = found.get((k, name))
            stamp = None if hit is None else pd.Timestamp(hit[1], tz="UTC")
            if hit is None or (limit is not None and now_ts - stamp > limit):
                values.append(None)
                stamps.append(pd.NaT if hit is None else stamp)
            else:
                values.append(json.loads(hit[0]))
                stamps.append(stamp)
        column = pd.Series(values, dtype=object)
        converted = pd.to_numeric(column, errors="coerce")
        if column.notna().sum() == converted.notna().sum():  # all numbers (or missing)
            column = converted.astype("float64") if converted.isna().any() else converted
        out[name] = column.to_numpy() if column.dtype != object else np.asarray(values, dtype=object)
        out[f"{name}__timestamp"] = pd.to_datetime(pd.Series(stamps, dtype="datetime64[ns, UTC]"))
        out[f"{name}__age"] = now_ts - out[f"{name}__timestamp"]
    return pd.DataFrame(out)


def open_online_store(host, plugin: str = "sqlite", params: dict[str, Any] | None = None, *,
                      workspace: str | Path | None = None):
    """An online store backend by name, given the workspace folder when it takes one."""
    cls = host.backends.get("online_store", plugin, where="online_store")
    params = dict(params or {})
    if workspace is not None and "workspace" in attrs.fields_dict(cls):
        params.setdefault("workspace", str(workspace))
    return host.backends.create("online_store", plugin, params, where="online_store")
