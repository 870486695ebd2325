"""The evaluate stage's parameters, shared by the stage's evaluators, ``tether evaluate``
and ``tether.evaluate``: task, threshold, baselines, slices, bootstrap and the gates.

Every rule is checked when the parameters are built (before a run starts): a gate on a
metric the task does not compute, a slice gate on an unknown slice, a ``beats`` naming no
baseline are ConfigErrors naming the key path (``slice_gates[0].metric``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import attrs
from tether.errors import ConfigError, did_you_mean
from tether.validators import at_least, one_of, within

from .tasks import metrics_of

CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: the threshold metrics a threshold can be chosen to maximise
THRESHOLD_METRICS = ("f1", "accuracy", "balanced_accuracy")
#: the baseline every evaluation scores: a dummy predicting the prior (or the mean)
DUMMY = "dummy"


def _callable(value: Any, key: str) -> None:
    if value is not None and (not isinstance(value, str) or not CALLABLE.match(value)):
        raise ConfigError(f"expected 'module:function', got {value!r}", key=key)


@attrs.frozen(kw_only=True)
class SliceSpec:
    """One slice: a raw column's values (``column``; numeric ``bins``: a count of quantile
    bins or the bin edges), or the rows a predicate ``where: module:function`` selects."""

    column: str | None = None
    name: str | None = None
    bins: Any = None  # a count of quantile bins, or increasing edges
    where: str | None = None
    top: int = attrs.field(default=20, validator=at_least(1))

    def __attrs_post_init__(self) -> None:
        if (self.column is None) == (self.where is None):
            raise ConfigError("give either column (a raw snapshot column) or where (module:function)", key="column")
        _callable(self.where, "where")
        if self.bins is not None:
            if self.column is None:
                raise ConfigError("bins apply to a column slice", key="bins")
            edges = isinstance(self.bins, (list, tuple)) and len(self.bins) >= 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.bins) and list(
                self.bins) == sorted(set(self.bins))
            count = isinstance(self.bins, int) and not isinstance(self.bins, bool) and self.bins >= 2
            if not (edges or count):
                raise ConfigError(f"expected a count of bins (2 or more) or at least two increasing edges, "
                                  f"got {self.bins!r}", key="bins")

    @property
    def label(self) -> str:
        return self.name or self.column or self.where.rpartition(":")[2]


@attrs.frozen(kw_only=True)
class SliceGate:
    """A rule on every segment of a slice (with enough support): ``metric`` at least ``min``
    and/or at most ``max``."""

    slice: str
    metric: str
    min: float | None = None
    max: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ConfigError("give min or max", key="min")


@attrs.frozen(kw_only=True)
class BaselineSpec:
    """A named baseline: a user ``rule`` (``module:function`` over the raw rows), a registered
    ``model`` (``mv-churn-3``, ``churn@3``, ``churn@champion``) re-scored on the same rows,
    or the dummy's ``strategy`` (classification: prior, most_frequent, stratified, uniform;
    regression: mean, median)."""

    rule: str | None = None
    model: str | None = None
    strategy: str | None = attrs.field(default=None, validator=one_of(
        "prior", "most_frequent", "stratified", "uniform", "mean", "median"))

    def __attrs_post_init__(self) -> None:
        given = [k for k in ("rule", "model", "strategy") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"give exactly one of rule, model or strategy, got {', '.join(given) or 'none'}",
                              key="rule")
        _callable(self.rule, "rule")

    @property
    def kind(self) -> str:
        return "rule" if self.rule else "model_version" if self.model else "dummy"


@attrs.frozen(kw_only=True)
class EvaluateParams:
    """Parameters of every evaluation (see docs/evaluation.md)."""

    #: the tasks this evaluator accepts; ``task`` picks one, else the label and model decide
    TASKS: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")

    task: str | None = attrs.field(default=None, validator=one_of("binary", "multiclass", "regression"),
                                   metadata={"doc": "binary, multiclass or regression; default: from the label "
                                                    "and the model"})
    threshold: float = attrs.field(default=0.5, validator=within(0, 1), metadata={
        "doc": "binary: scores at or above it predict the positive class"})
    choose_threshold: str | None = attrs.field(default=None, validator=one_of(*THRESHOLD_METRICS), metadata={
        "doc": "binary: choose the threshold that maximises this metric (f1, accuracy, balanced_accuracy)"})
    threshold_split: str = attrs.field(default="validation", validator=one_of("train", "validation", "test"),
                                       metadata={"doc": "the split the threshold is chosen on"})
    k: int = attrs.field(default=10, validator=at_least(1), metadata={"doc": "ranking: the cut-off of @k metrics"})
    baselines: dict[str, BaselineSpec] = attrs.field(factory=dict, metadata={
        "doc": "name -> {rule: module:function} | {model: churn@production} | {strategy: prior}; "
               "a dummy is always scored"})
    baseline: str | None = attrs.field(default=None, metadata={
        "doc": "the baseline a plain max_regression compares with; `latest`: the latest version of model_name"})
    model_name: str | None = attrs.field(default=None, metadata={"doc": "the registered model `latest` is of"})
    min: dict[str, float] = attrs.field(factory=dict, metadata={"doc": "metric -> lowest acceptable value"})
    max: dict[str, float] = attrs.field(factory=dict, metadata={"doc": "metric -> highest acceptable value"})
    beats: dict[str, Any] = attrs.field(factory=dict, metadata={
        "doc": "baseline -> margin (on the task's primary metric) or {metric, margin}"})
    max_regression: dict[str, Any] = attrs.field(factory=dict, metadata={
        "doc": "metric -> largest allowed loss against `baseline`, or baseline -> {metric: loss}"})
    slices: tuple[SliceSpec, ...] = attrs.field(default=(), metadata={
        "doc": "[{column, bins?, top?} | {where: module:function, name}] over the raw snapshot columns"})
    slice_gates: tuple[SliceGate, ...] = attrs.field(default=(), metadata={
        "doc": "[{slice, metric, min?, max?}]: a rule on every segment with enough support"})
    min_support: int = attrs.field(default=30, validator=at_least(1), metadata={
        "doc": "segments with fewer rows are flagged and not gated"})
    resamples: int = attrs.field(default=1000, validator=at_least(10), metadata={
        "doc": "bootstrap resamples of every interval"})
    confidence: float = attrs.field(default=0.95, validator=within(0, 1, open_low=True, open_high=True),
                                    metadata={"doc": "the intervals' confidence level"})
    seed: int = attrs.field(default=0, metadata={"doc": "the bootstrap's and the example sample's seed"})
    examples: int = attrs.field(default=20, validator=at_least(0), metadata={
        "doc": "how many highest-loss and correct rows the error analysis keeps"})

    def __attrs_post_init__(self) -> None:
        if self.task is not None and self.task not in type(self).TASKS:
            raise ConfigError(f"the {getattr(self, 'name', '')} evaluator evaluates {', '.join(type(self).TASKS)}, "
                              f"not {self.task}", key="task")
        if self.baseline == "latest" and not self.model_name:
            raise ConfigError("baseline: latest needs the model_name whose latest version is the baseline",
                              key="model_name")
        names = self.baseline_names()
        if self.baseline is not None and self.baseline not in names:
            raise ConfigError(f"no baseline '{self.baseline}'{did_you_mean(self.baseline, names)} "
                              f"(baselines: {', '.join(names)})", key="baseline")
        self.check_rules(self.gated_tasks())

    # -- what may be named ------------------------------------------------------------------

    def gated_tasks(self) -> tuple[str, ...]:
        return (self.task,) if self.task else type(self).TASKS

    def metric_names(self) -> tuple[str, ...]:
        return metrics_of(self.gated_tasks(), self.k)

    def baseline_names(self) -> list[str]:
        return list(dict.fromkeys([DUMMY, *self.baselines, *(["latest"] if self.baseline == "latest" else [])]))

    def slice_labels(self) -> list[str]:
        return [s.label for s in self.slices]

    def _metric(self, metric: Any, key: str) -> None:
        known = self.metric_names()
        if metric not in known:
            what = f"the {self.name} evaluator" if hasattr(self, "name") else f"task {'/'.join(self.gated_tasks())}"
            raise ConfigError(f"unknown metric '{metric}' ({what} computes: {', '.join(known)})"
                              f"{did_you_mean(str(metric), known)}", key=key)

    def check_rules(self, tasks: tuple[str, ...]) -> None:
        """Every gate names a metric the task computes, a baseline that exists, a slice given."""
        labels = self.slice_labels()
        if len(set(labels)) != len(labels):
            raise ConfigError("two slices have the same name; give one a name", key="slices")
        for gate in ("min", "max"):
            for metric in getattr(self, gate):
                self._metric(metric, f"{gate}.{metric}")
        names = self.baseline_names()
        for name, rule in self.beats.items():
            self._baseline(name, f"beats.{name}", names)
            self.beats_rule(name, rule)
        for key, value in self.max_regression.items():
            if isinstance(value, dict):
                self._baseline(key, f"max_regression.{key}", names)
                for metric, allowed in value.items():
                    self._metric(metric, f"max_regression.{key}.{metric}")
                    _number(allowed, f"max_regression.{key}.{metric}")
            else:
                self._metric(key, f"max_regression.{key}")
                _number(value, f"max_regression.{key}")
                if self.baseline is None:
                    raise ConfigError("a plain max_regression compares with `baseline`; set baseline (e.g. latest) "
                                      "or write max_regression: {BASELINE: {metric: allowed}}",
                                      key=f"max_regression.{key}")
        for i, rule in enumerate(self.slice_gates):
            if rule.slice not in labels:
                raise ConfigError(f"no slice '{rule.slice}'{did_you_mean(rule.slice, labels)} "
                                  f"(slices: {', '.join(labels) or 'none; add it under slices'})",
                                  key=f"slice_gates[{i}].slice")
            self._metric(rule.metric, f"slice_gates[{i}].metric")

    def _baseline(self, name: str, key: str, names: list[str]) -> None:
        if name not in names:
            raise ConfigError(f"no baseline '{name}'{did_you_mean(name, names)} (baselines: {', '.join(names)}; "
                              "add it under baselines)", key=key)

    def beats_rule(self, name: str, rule: Any) -> tuple[str | None, float]:
        """``(metric or None for the primary one, margin)`` of ``beats.<name>``."""
        key = f"beats.{name}"
        if isinstance(rule, dict):
            unknown = sorted(set(rule) - {"metric", "margin"})
            if unknown:
                raise ConfigError(f"unknown key '{unknown[0]}' (allowed: metric, margin)", key=f"{key}.{unknown[0]}")
            metric = rule.get("metric")
            if metric is not None:
                self._metric(metric, f"{key}.metric")
            margin = rule.get("margin", 0.0)
            _number(margin, f"{key}.margin")
            return metric, float(margin)
        _number(rule, key)
        return None, float(rule)

    def gate_summary(self) -> dict[str, dict[str, float]]:
        """``metric -> {"min": x, "max": y, "max_regression": z}`` (the plain metric gates)."""
        out: dict[str, dict[str, float]] = {}
        for gate in ("min", "max"):
            for metric, value in getattr(self, gate).items():
                out.setdefault(metric, {})[gate] = value
        for metric, value in self.max_regression.items():
            if not isinstance(value, dict):
                out.setdefault(metric, {})["max_regression"] = value
        return out


def _number(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"expected a number, got {value!r}", key=key)
