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
from tether.names import check_name
from tether.validators import above, at_least, share, within

from .alerts import AlertRule, default_rules
from .checks import backend_spec
from .sketches import DEFAULT_MAX_CATEGORIES, DEFAULT_SKETCH_SIZE
from .triggers import Trigger

TimeRange = tuple[dt.datetime | None, dt.datetime | None]
WINDOW_SPLITS = ("none", "daily", "weekly")


def _test_lists(value) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping of column -> test names, got {value!r}", key="tests")
    out = {}
    for column, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"expected a test name or a list of names, got {names!r}", key=f"tests.{column}")
        out[str(column)] = list(names)
    return out


def _test_params(value) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f"expected a mapping of test name -> params, got {value!r}", key="test_params")
    return dict(value)


@attrs.frozen(kw_only=True)
class DriftParams:
    """``drift:`` which tests run on which columns, and the sketches they run on."""

    tests: Any = attrs.field(factory=dict, converter=_test_lists)  # column (or "*") -> test name(s)
    test_params: Any = attrs.field(factory=dict, converter=_test_params)  # test name -> params
    multivariate: tuple[str, ...] = ()  # e.g. [domain_classifier]
    sketch_size: int = attrs.field(default=DEFAULT_SKETCH_SIZE, validator=at_least(2))
    max_categories: int = attrs.field(default=DEFAULT_MAX_CATEGORIES, validator=at_least(1))
    sample_rows: int = attrs.field(default=5_000, validator=at_least(0))  # 0: no row sample


def _every(inst, attribute, value) -> None:
    if value not in WINDOW_SPLITS:
        raise ConfigError(f"{value!r} is not one of {', '.join(WINDOW_SPLITS)}", key="every")


def _name(inst, attribute, value) -> None:
    if value is not None:
        try:
            check_name(value, attribute.name, what="profile name")
        except ConfigError as exc:
            raise ConfigError(str(exc).split(": ", 1)[1], key=attribute.name) from None


def _window_source(inst, attribute, value) -> None:
    if value is not None:
        backend_spec(value, attribute.name, type(inst))


@attrs.frozen(kw_only=True)
class WindowParams:
    """``windows:`` where the reference and the current window come from."""

    current: Any = attrs.field(default=None, validator=_window_source)  # window source {plugin, params}
    every: str = attrs.field(default="none", validator=_every)  # none | daily | weekly: split the current window
    reference_profile: str | None = None  # stored profile: id, id prefix, NAME or NAME@VERSION
    profile_name: str | None = attrs.field(default=None, validator=_name)  # name new reference profiles get
    reference_range: TimeRange | None = None  # [start, end) of the reference rows
    current_range: TimeRange | None = None  # [start, end) of the current window's rows


@attrs.frozen(kw_only=True)
class HealthParams:
    """``health:`` thresholds of the data-health checks."""

    # freshness: newest timestamp older than this -> error
    max_lag_hours: float | None = attrs.field(default=None, validator=above(0))
    as_of: dt.datetime | None = None  # "now" for freshness (default: the current time)
    # |rows_current / rows_reference - 1| above this -> warning
    volume_change: float = attrs.field(default=0.5, validator=at_least(0))
    # compare volume with this instead of the reference rows
    expected_rows: int | None = attrs.field(default=None, validator=at_least(1))
    # absolute change of a column's missing share -> warning
    missing_change: float = attrs.field(default=0.1, validator=share)
    # share of current values outside the reference [min, max] -> warning
    out_of_range: float = attrs.field(default=0.01, validator=share)
    # share of rows in categories never seen in the reference -> warning
    unseen_share: float = attrs.field(default=0.01, validator=share)
    # distinct values grew by more than this factor -> warning
    cardinality_factor: float = attrs.field(default=2.0, validator=above(0))
    # column -> {min, max, allowed, max_missing, max_distinct}
    expect: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    definitions: bool = True  # also check columns against the workspace's feature definitions


def _join_columns(value) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"expected a column name or a list of names, got {value!r}", key="join_on")
    return tuple(names)


@attrs.frozen(kw_only=True)
class ModelParams:
    """``model:`` the prediction columns of a window, and where its delayed labels are."""

    score: str | None = None
    prediction: str | None = None
    threshold: float = attrs.field(default=0.5, validator=within(0, 1))  # scores are probabilities
    labels: str | None = None  # a CSV/Parquet path or a snapshot (id, id prefix, NAME, NAME@VERSION)
    label: str | None = None  # the label column of ``labels``
    join_on: Any = attrs.field(default=None, converter=_join_columns)  # request id, or entity and time columns
    segments: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.labels and (not self.label or not self.join_on):
            raise ConfigError("needs label (the label column) and join_on "
                             "(request id, or entity and time columns)", key="labels")

    @property
    def enabled(self) -> bool:
        return bool(self.score or self.prediction or self.labels)


@attrs.frozen(kw_only=True)
class AlertParams:
    """``alerts:`` rules, sinks, retraining triggers and rollback."""

    warn_share: float = attrs.field(default=0.2, validator=share)  # thresholds of the default rules
    critical_share: float = attrs.field(default=0.5, validator=share)
    rules: tuple[Any, ...] = ()
    sinks: tuple[Any, ...] = ()  # alert sinks {plugin, params}, built by the monitor's preflight
    triggers: tuple[Any, ...] = ()
    retrain_chain: str | None = None  # launched by an unsuppressed `retrain` alert
    rollback: Any = None  # rollback backend {plugin, params}

    def __attrs_post_init__(self) -> None:
        if self.warn_share > self.critical_share:
            raise ConfigError(f"must be at most critical_share ({self.critical_share:g}), "
                             f"got {self.warn_share:g}", key="warn_share")
        for i, raw in enumerate(self.sinks):
            backend_spec(raw, f"sinks[{i}]", type(self))
        if self.rollback is not None:
            backend_spec(self.rollback, "rollback", type(self))
        self.alert_rules()
        self.trigger_list()

    def alert_rules(self) -> list[AlertRule]:
        rules = [_keyed(AlertRule.from_config, raw, f"rules[{i}]") for i, raw in enumerate(self.rules)]
        return rules or default_rules(self.warn_share, self.critical_share)

    def trigger_list(self) -> list[Trigger]:
        return [_keyed(Trigger.from_config, raw, f"triggers[{i}]") for i, raw in enumerate(self.triggers)]


def _keyed(parse, raw, key: str):
    """``parse(raw, key)``, its ConfigError keyed so the chain error names the key path."""
    try:
        return parse(raw, key)
    except ConfigError as exc:
        if exc.key is not None:
            raise
        found, _, problem = str(exc).partition(": ")
        raise ConfigError(problem or str(exc), key=found if problem else key) from None
