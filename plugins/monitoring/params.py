"""The drift monitor's parameter groups, one per section of docs/monitoring.md.

A chain writes them nested under the stage's ``params``, e.g.
``params: {health: {max_lag_hours: 6}, alerts: {critical_share: 0.5}}``; the strict
params converter structures each group and rejects unknown keys at any depth.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from tether.errors import ConfigError

from .alerts import AlertRule, default_rules
from .sketches import DEFAULT_MAX_CATEGORIES, DEFAULT_SKETCH_SIZE
from .triggers import Trigger

TimeRange = tuple[dt.datetime | None, dt.datetime | None]
WINDOW_SPLITS = ("none", "daily", "weekly")


def _test_lists(value) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"tests: expected a mapping of column -> test names, got {value!r}")
    out = {}
    for column, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"tests.{column}: expected a test name or a list of names, got {names!r}")
        out[str(column)] = list(names)
    return out


@attrs.frozen(kw_only=True)
class DriftParams:
    """``drift:`` which tests run on which columns, and the sketches they run on."""

    tests: dict[str, Any] = attrs.field(factory=dict, converter=_test_lists)  # column (or "*") -> test name(s)
    test_params: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # test name -> params
    multivariate: tuple[str, ...] = ()  # e.g. [domain_classifier]
    sketch_size: int = DEFAULT_SKETCH_SIZE
    max_categories: int = DEFAULT_MAX_CATEGORIES
    sample_rows: int = 5_000


@attrs.frozen(kw_only=True)
class WindowParams:
    """``windows:`` where the reference and the current window come from."""

    current: dict[str, Any] | None = None  # window source {plugin, params}
    every: str = "none"  # none | daily | weekly: split the current window and report the trend
    reference_profile: str | None = None  # stored profile id or name; instead of the reference snapshot
    profile_name: str | None = None  # name new reference profiles are stored under
    reference_range: TimeRange | None = None  # [start, end) of the reference rows
    current_range: TimeRange | None = None  # [start, end) of the current window's rows

    def __attrs_post_init__(self) -> None:
        if self.every not in WINDOW_SPLITS:
            raise ConfigError(f"every: {self.every!r} is not one of {', '.join(WINDOW_SPLITS)}")


@attrs.frozen(kw_only=True)
class HealthParams:
    """``health:`` thresholds of the data-health checks."""

    max_lag_hours: float | None = None  # freshness: newest timestamp older than this -> error
    as_of: dt.datetime | None = None  # "now" for freshness (default: the current time)
    volume_change: float = 0.5  # |rows_current / rows_reference - 1| above this -> warning
    expected_rows: int | None = None  # compare volume with this instead of the reference rows
    missing_change: float = 0.1  # absolute change of a column's missing share -> warning
    out_of_range: float = 0.01  # share of current values outside the reference [min, max] -> warning
    unseen_share: float = 0.01  # share of rows in categories never seen in the reference -> warning
    cardinality_factor: float = 2.0  # distinct values grew by more than this factor -> warning
    # column -> {min, max, allowed, max_missing, max_distinct}
    expect: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    definitions: bool = True  # also check columns against the workspace's feature definitions


def _join_columns(value) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"join_on: expected a column name or a list of names, got {value!r}")
    return tuple(names)


@attrs.frozen(kw_only=True)
class ModelParams:
    """``model:`` the prediction columns of a window, and where its delayed labels are."""

    score: str | None = None
    prediction: str | None = None
    threshold: float = 0.5
    labels: str | None = None  # a CSV/Parquet path or a snapshot id
    label: str | None = None  # the label column of ``labels``
    join_on: Any = attrs.field(default=None, converter=_join_columns)  # request id, or entity and time columns
    segments: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.labels and (not self.label or not self.join_on):
            raise ConfigError("labels needs label (the label column) and join_on "
                              "(request id, or entity and time columns)")

    @property
    def enabled(self) -> bool:
        return bool(self.score or self.prediction or self.labels)


@attrs.frozen(kw_only=True)
class AlertParams:
    """``alerts:`` rules, sinks, retraining triggers and rollback."""

    warn_share: float = 0.2  # thresholds of the default rules
    critical_share: float = 0.5
    rules: tuple[dict[str, Any], ...] = ()
    sinks: tuple[dict[str, Any], ...] = ()
    triggers: tuple[dict[str, Any], ...] = ()
    retrain_chain: str | None = None  # launched by an unsuppressed `retrain` alert
    rollback: dict[str, Any] | None = None  # rollback backend {plugin, params}

    def __attrs_post_init__(self) -> None:
        self.alert_rules()
        self.trigger_list()

    def alert_rules(self) -> list[AlertRule]:
        rules = [AlertRule.from_config(raw, f"rules[{i}]") for i, raw in enumerate(self.rules)]
        return rules or default_rules(self.warn_share, self.critical_share)

    def trigger_list(self) -> list[Trigger]:
        return [Trigger.from_config(raw, f"triggers[{i}]") for i, raw in enumerate(self.triggers)]
