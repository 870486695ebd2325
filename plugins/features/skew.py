"""The training-serving skew check: features computed offline (point-in-time join, what a
training set holds) and online (the serving implementation, materialised to an online
store and read back) for sampled entities and times, compared value by value."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from tether.errors import ConfigError, DataError
from tether.records import Finding

from .calculations import build_training_set, compute_feature
from .catalogue import FeatureDefinition
from .values import jsonable, values_equal

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


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

    def failed_features(self) -> str:
        """``"name (mismatches/checked), ..."`` for every feature with a mismatch."""
        return ", ".join(f"{n} ({c}/{self.checked[n]})" for n, c in self.mismatches.items() if c)

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

    serving = dict(serving or {})
    key, ts_col = _entity_and_time(definitions, serving, source)
    sample_ids, instants, probe = _sample(source, key, ts_col, entities=entities, timestamps=timestamps, seed=seed)
    offline = build_training_set(probe, definitions, source, entity=key, prediction_time="__at")
    online = _online_values(definitions, source, online_store, serving, sample_ids, instants,
                            view=view or f"skew-{uuid.uuid4().hex[:12]}", key=key, ts_col=ts_col)
    return _compare(definitions, offline, online, key=key, tolerance=tolerance)


def _entity_and_time(definitions: Sequence[FeatureDefinition], serving: Mapping[str, Any], source) -> tuple[str, str]:
    """The one (entity, timestamp) column pair all ``definitions`` share, checked."""
    if not definitions:
        raise ConfigError("skew check: no feature definitions to check")
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
    _check_source(source, ts_col)
    return key, ts_col


def _check_source(source, ts_col: str) -> None:
    """Rows to sample, and a timestamp column that holds timestamps."""
    import pandas as pd

    if len(source) == 0 or source[ts_col].notna().sum() == 0:
        raise DataError("skew check: the source has no rows" if len(source) == 0
                        else f"skew check: the timestamp column '{ts_col}' holds no values")
    if not pd.api.types.is_datetime64_any_dtype(source[ts_col]):
        raise DataError(f"skew check: the timestamp column '{ts_col}' holds {source[ts_col].dtype} values, not "
                        "timestamps; store it as a timestamp (ISO 8601 text such as 2025-01-31T12:00:00Z in a CSV)")


def _sample(source, key: str, ts_col: str, *, entities: int, timestamps: int, seed: int):
    """Sampled entity ids, sampled times (20%..100% quantiles), and their cross product."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = pd.Series(source[key].dropna().unique())
    sample_ids = ids.sample(n=min(entities, len(ids)), random_state=int(rng.integers(2**31))).tolist()
    times = source[ts_col].dropna()
    qs = np.sort(rng.uniform(0.2, 1.0, size=timestamps))
    instants = [times.quantile(q) for q in qs]
    probe = pd.DataFrame([(k, t) for t in instants for k in sample_ids], columns=[key, "__at"])
    if getattr(times.dt, "tz", None) is not None:
        probe["__at"] = pd.to_datetime(probe["__at"], utc=True).dt.tz_convert(times.dt.tz)
    return sample_ids, instants, probe


def _online_values(definitions, source, online_store, serving, sample_ids, instants, *, view: str, key: str,
                   ts_col: str):
    """The serving path: materialise as of each time into a scratch view and read back."""
    import pandas as pd
    from tether.plugins.online_store.lookups import get_online_features, materialize

    online_parts = []
    try:
        for t in instants:
            known = source[source[ts_col] <= t]
            for d in definitions:
                computed = compute_feature(d, known, serving.get(d.name))
                materialize(online_store, computed, view=view, entity=key, feature_time=ts_col,
                                         features=[d.name], as_of=t, lag=d.lag)
            got = get_online_features(online_store, sample_ids, view=view, features=[d.name for d in definitions],
                                                   now=t, ttl={d.name: d.time_to_live for d in definitions})
            got["__at"] = t
            online_parts.append(got)
    finally:
        with contextlib.suppress(Exception):  # cleanup must not hide the real error
            online_store.drop_view(view)
    return pd.concat(online_parts, ignore_index=True)


def _compare(definitions, offline, online, *, key: str, tolerance: float) -> SkewReport:
    import numpy as np
    import pandas as pd

    checked, mismatches, examples = {}, {}, []
    for d in definitions:
        on = online[d.name] if d.name in online else pd.Series([None] * len(offline))
        same = values_equal(offline[d.name], on, tolerance)
        checked[d.name] = len(same)
        mismatches[d.name] = int((~same).sum())
        for i in np.flatnonzero(~same)[:5]:
            examples.append({"feature": d.name, "entity": jsonable(offline[key].iloc[i]),
                             "at": str(offline["__at"].iloc[i]), "offline": jsonable(offline[d.name].iloc[i]),
                             "online": jsonable(on.iloc[i])})
    return SkewReport(tolerance=tolerance, checked=checked, mismatches=mismatches, examples=tuple(examples))
