"""The monitor stage and the ``tether drift`` / ``tether monitor`` / ``tether profile`` commands.

The ``drift`` monitor compares a current window with a reference profile: per-column drift
tests (:mod:`tether.plugins.drift`), data health and model behaviour
(:mod:`tether.plugins.monitor_checks`), optional daily/weekly windows with their trend,
alert rules, sinks, retraining triggers and rollback (:mod:`tether.plugins.alerts`), and a
JSON record plus an optional self-contained HTML report (:mod:`tether.plugins.monitor_report`).

In a chain the reference is the ``reference`` snapshot (by default the training snapshot),
profiled once and stored as a ``profile`` record that later runs reuse, or a stored
profile named in ``reference_profile``. The current window is read through a window
source (backend kind ``window``): ``current: {plugin: ..., params: ...}`` if given, else
the ``current`` snapshot, else the deployment's prediction table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether import hookimpl
from tether.backends import Monitor
from tether.errors import ConfigError, DataError
from tether.records import Finding, MonitorReport, new_id

from .alerts import (
    AlertRule,
    Trigger,
    default_rules,
    deliver,
    fire,
    roll_back,
    run_triggers,
    verdict_of,
)
from .drift import DEFAULT_MAX_CATEGORIES, DEFAULT_SKETCH_SIZE, CategoricalSketch, NumericSketch

EXIT_OK, EXIT_CRITICAL, EXIT_BAD_INPUT = 0, 1, 2


@attrs.frozen(kw_only=True)
class DriftMonitor(Monitor):
    """Drift tests, data health, model behaviour, windows and alerts (see docs/monitoring.md)."""

    name: ClassVar[str] = "drift"
    columns: tuple[str, ...] = ()  # empty: every shared column except time and key columns
    exclude: tuple[str, ...] = ()
    # column (or "*") -> test name or names
    tests: dict[str, Any] = attrs.field(factory=dict, converter=lambda v: _test_lists(v))
    test_params: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # test name -> params
    multivariate: tuple[str, ...] = ()  # e.g. [domain_classifier]
    time_column: str | None = None  # default: the snapshot's / source's time column
    window: str = "none"  # none | daily | weekly
    sketch_size: int = DEFAULT_SKETCH_SIZE
    max_categories: int = DEFAULT_MAX_CATEGORIES
    sample_rows: int = 5_000
    workers: int = 2  # threads for sketches and tests; 1 to stay on one core
    reference_profile: str | None = None  # stored profile id or name; instead of the reference snapshot
    reference_range: tuple[dt.datetime | None, dt.datetime | None] | None = None  # [start, end) of the reference
    current_range: tuple[dt.datetime | None, dt.datetime | None] | None = None  # [start, end) of the current window
    profile_name: str | None = None  # name new reference profiles are stored under
    current: dict[str, Any] | None = None  # window source {plugin, params}
    # data health
    max_lag_hours: float | None = None
    as_of: dt.datetime | None = None
    volume_change: float = 0.5
    expected_rows: int | None = None
    missing_change: float = 0.1
    out_of_range: float = 0.01
    unseen_share: float = 0.01
    cardinality_factor: float = 2.0
    expect: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    definitions: bool = True  # also check columns against the workspace's feature definitions
    # model behaviour: {score, prediction, label, threshold, labels, join_on, segments}
    model: dict[str, Any] = attrs.field(factory=dict)
    # alerts
    warn_share: float = 0.2
    critical_share: float = 0.5
    rules: tuple[dict[str, Any], ...] = ()
    sinks: tuple[dict[str, Any], ...] = ()
    triggers: tuple[dict[str, Any], ...] = ()
    retrain_chain: str | None = None  # launched by an unsuppressed `retrain` alert
    rollback: dict[str, Any] | None = None
    html: str | None = None  # write the HTML report here

    def __attrs_post_init__(self) -> None:
        if self.window not in ("none", "daily", "weekly"):
            raise ConfigError(f"window: {self.window!r} is not one of none, daily, weekly")
        for i, raw in enumerate(self.rules):
            AlertRule.from_config(raw, f"rules[{i}]")
        for i, raw in enumerate(self.triggers):
            Trigger.from_config(raw, f"triggers[{i}]")
        unknown = set(self.model) - {"score", "prediction", "label", "threshold", "labels", "join_on", "segments"}
        if unknown:
            raise ConfigError(f"model: unknown key '{min(unknown)}' (allowed: score, prediction, label, "
                              "threshold, labels, join_on, segments)")

    def health_config(self, expect: dict[str, dict[str, Any]] | None = None):
        from .monitor_checks import HealthConfig

        return HealthConfig(max_lag_hours=self.max_lag_hours, as_of=self.as_of, volume_change=self.volume_change,
                            expected_rows=self.expected_rows, missing_change=self.missing_change,
                            out_of_range=self.out_of_range, unseen_share=self.unseen_share,
                            cardinality_factor=self.cardinality_factor, expect={**(expect or {}), **self.expect})

    def builder_args(self, exclude=()) -> dict[str, Any]:
        return {"columns": tuple(self.columns), "exclude": tuple(self.exclude) + tuple(exclude),
                "sketch_size": self.sketch_size, "max_categories": self.max_categories,
                "sample_rows": self.sample_rows, "workers": self.workers}


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


def _empty_like(sketch):
    if isinstance(sketch, NumericSketch):
        return NumericSketch(sketch_size=sketch.sketch_size)
    return CategoricalSketch(max_categories=sketch.max_categories)


def merge_profiles(profiles):
    """One profile of several windows (new sketches; the windows stay as they are)."""
    from .monitor_windows import DataProfile

    out = DataProfile(columns={}, types={}, time_column=profiles[0].time_column if profiles else None)
    for p in profiles:
        for name, sk in p.columns.items():
            if name not in out.columns:
                out.columns[name] = _empty_like(sk)
                out.types[name] = p.types[name]
            out.columns[name].merge(sk)
        out.rows += p.rows
        if p.time_min is not None:
            out.time_min = p.time_min if out.time_min is None else min(out.time_min, p.time_min)
            out.time_max = p.time_max if out.time_max is None else max(out.time_max, p.time_max)
    return out


def definition_expectations(context, columns: set[str]) -> dict[str, dict[str, Any]]:
    """Validity rules from the latest version of each feature definition (record kind
    ``feature``) named like a monitored column: ``valid_range``, ``allowed_values``,
    ``max_missing_share``, ``max_cardinality``."""
    if context.workspace is None or not columns:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for d in context.store.find("feature"):  # newest first
        name = getattr(d, "name", None)
        if name not in columns or name in out:
            continue
        rule: dict[str, Any] = {}
        lo, hi = getattr(d, "valid_range", None) or (None, None)
        if lo is not None:
            rule["min"] = lo
        if hi is not None:
            rule["max"] = hi
        if getattr(d, "allowed_values", ()):
            rule["allowed"] = list(d.allowed_values)
        if getattr(d, "max_missing_share", None) is not None:
            rule["max_missing"] = d.max_missing_share
        if getattr(d, "max_cardinality", None) is not None:
            rule["max_distinct"] = d.max_cardinality
        out[name] = rule
    return out


def _signals(results, findings, rows, health_metrics, model_section) -> dict[str, float]:
    per_column = [r for r in results if r.column != "*"]
    columns = {r.column for r in per_column}
    drifted = {r.column for r in per_column if r.drifted}
    signals: dict[str, float] = {
        "rows": float(rows),
        "drift.count": float(len(drifted)),
        "drift.share": len(drifted) / len(columns) if columns else 0.0,
        "health.errors": float(sum(f.severity == "error" for f in findings)),
        "health.warnings": float(sum(f.severity == "warning" for f in findings)),
    }
    for r in results:
        signals[f"drift.column.{r.column}"] = max(signals.get(f"drift.column.{r.column}", 0.0), float(r.drifted))
    for f in findings:
        signals[f"health.{f.check}"] = signals.get(f"health.{f.check}", 0.0) + 1
    for key in ("volume_ratio", "freshness_lag_hours"):
        if key in health_metrics:
            signals[key] = float(health_metrics[key])
    for name, value in (model_section.get("estimated") or {}).items():
        signals[f"estimated.{name}"] = value
    for name, value in ((model_section.get("labelled") or {}).get("overall") or {}).items():
        signals[f"performance.{name}"] = value
    if "class_rate_change" in model_section:
        signals["class_rate.change"] = model_section["class_rate_change"]
    if model_section.get("confidence_reference") is not None:
        signals["confidence.change"] = model_section["confidence_current"] - model_section["confidence_reference"]
    for name, value in (model_section.get("estimated_drop") or {}).items():
        signals[f"performance_drop.{name}"] = value
    return signals


def _model_section(monitor, reference, current, *, current_frame_loader, reference_metrics, context) -> dict[str, Any]:
    from .monitor_checks import (
        CBPE_ASSUMPTIONS,
        class_rates,
        confidence,
        estimate_performance,
        labelled_performance,
    )

    cfg = monitor.model
    if not cfg:
        return {}
    score, prediction = cfg.get("score"), cfg.get("prediction")
    threshold = float(cfg.get("threshold", 0.5))
    out: dict[str, Any] = {"score": score, "prediction": prediction, "threshold": threshold}
    for col in (score, prediction):
        if col and col not in current.columns:
            raise DataError(f"model: column '{col}' is not in the current window "
                            f"(columns: {', '.join(current.columns)})")
    if score:
        sk = current.columns[score]
        if not isinstance(sk, NumericSketch):
            raise DataError(f"model.score: column '{score}' is not numeric")
        out["confidence_current"] = confidence(sk)
        if score in reference.columns and isinstance(reference.columns[score], NumericSketch):
            out["confidence_reference"] = confidence(reference.columns[score])
        out["estimated"] = estimate_performance(sk, threshold)
        out["assumptions"] = list(CBPE_ASSUMPTIONS)
        if reference_metrics:
            out["reference_metrics"] = {k: v for k, v in reference_metrics.items() if k in out["estimated"]}
            out["estimated_drop"] = {k: reference_metrics[k] - v for k, v in out["estimated"].items()
                                     if k in reference_metrics and k != "positive_rate"}
    if prediction:
        cur_rates = class_rates(current.columns[prediction])
        out["class_rates_current"] = cur_rates
        ref_rates = class_rates(reference.columns[prediction]) if prediction in reference.columns else None
        if ref_rates is None and reference_metrics and "positive_rate" in reference_metrics:
            ref_rates = {"1": reference_metrics["positive_rate"], "0": 1 - reference_metrics["positive_rate"]}
        if ref_rates is not None:
            out["class_rates_reference"] = ref_rates
            out["class_rate_change"] = max(abs(cur_rates.get(k, 0.0) - ref_rates.get(k, 0.0))
                                           for k in set(cur_rates) | set(ref_rates))
    if cfg.get("labels"):
        label = cfg.get("label")
        join_on = cfg.get("join_on")
        if not label or not join_on:
            raise ConfigError("model.labels needs model.label (the label column) and model.join_on "
                              "(request id, or entity and time columns)")
        join_on = [join_on] if isinstance(join_on, str) else list(join_on)
        labels = _read_frame(cfg["labels"], context)
        preds = current_frame_loader()
        if preds is None:
            raise ConfigError("model.labels: this monitor cannot re-read the current window's rows to join labels")
        for side, frame in (("labels", labels), ("current window", preds)):
            missing = [c for c in join_on if c not in frame.columns]
            if missing:
                raise DataError(f"model.join_on: column '{missing[0]}' is not in the {side}")
        if label not in labels.columns:
            raise DataError(f"model.label: column '{label}' is not in the labels")
        joined = preds.drop(columns=[label], errors="ignore").merge(labels[join_on + [label]], on=join_on, how="inner")
        out["labels_joined"] = len(joined)
        out["labels_coverage"] = len(joined) / len(preds) if len(preds) else 0.0
        if len(joined):
            out["labelled"] = labelled_performance(joined, label=label, score=score, prediction=prediction,
                                                   threshold=threshold, segments=tuple(cfg.get("segments") or ()))
    return out


def _read_frame(source: str, context):
    """A whole (small) table: a CSV/Parquet path or a snapshot id."""
    import pyarrow as pa

    from .monitor_windows import file_batches

    path = context.resolve_path(source)
    if path.exists():
        return pa.Table.from_batches(list(file_batches(path))).to_pandas()
    snap = context.store.get(source, kind="snapshot") if context.workspace is not None else None
    if snap is None:
        raise DataError(f"'{source}' is neither a file nor a snapshot id")
    return context.workspace.read_snapshot(snap)


def run_monitor(monitor: DriftMonitor, *, reference, current_batches, context, reference_id: str, current_id: str,
                profile_id: str | None = None, deployment=None, time_column: str | None = None,
                key_columns=(), reference_metrics: dict[str, float] | None = None,
                current_frame_loader=None, state_path: Path | None = None, send: bool = True,
                launch: bool = True) -> MonitorReport:
    """Profile the current window (chunk by chunk), compare, check, alert; return the report."""
    from .monitor_checks import compare, health
    from .monitor_report import plot_data, write_html
    from .monitor_windows import profile_batches, profile_windows, time_range

    backends = context.host.backends
    time_column = monitor.time_column or time_column
    if monitor.current_range:
        if not time_column:
            raise ConfigError("current_range needs a time column; set time_column")
        current_batches = time_range(current_batches, time_column, *monitor.current_range)
    args = monitor.builder_args(exclude=tuple(key_columns))
    windows = []
    if monitor.window != "none":
        if not time_column:
            raise ConfigError(f"window: {monitor.window} needs a time column; set time_column")
        windows = profile_windows(current_batches, every=monitor.window, time_column=time_column, **args)
        current = merge_profiles(windows)
        if not windows:
            current = profile_batches([], time_column=time_column, **args)
    else:
        current = profile_batches(current_batches, time_column=time_column, **args)
    # only columns the reference monitors (its profile already excludes time and key columns)
    for name in [c for c in current.columns if c in set(key_columns) or c == time_column]:
        current.columns.pop(name)
        current.types.pop(name, None)
    compare_args = dict(backends=backends, tests=monitor.tests, test_params=monitor.test_params,
                        columns=tuple(monitor.columns), workers=monitor.workers)
    results, findings = compare(reference, current, multivariate=tuple(monitor.multivariate), **compare_args)
    expect = definition_expectations(context, set(current.columns)) if monitor.definitions else {}
    hfindings, hmetrics = health(reference, current, monitor.health_config(expect))
    findings = hfindings + findings
    model = _model_section(monitor, reference, current, reference_metrics=reference_metrics, context=context,
                           current_frame_loader=current_frame_loader or (lambda: None))
    signals = _signals(results, findings, current.rows, hmetrics, model)
    trend = []
    for w in windows:
        w_results, _ = compare(reference, w, **compare_args)
        cols = {r.column for r in w_results}
        drifted = sorted({r.column for r in w_results if r.drifted})
        trend.append({"window": w.label, "rows": w.rows, "drifted": drifted,
                      "drift_share": len(drifted) / len(cols) if cols else 0.0,
                      "statistics": {r.column: r.statistic for r in w_results}})
    rules = [AlertRule.from_config(r, f"rules[{i}]") for i, r in enumerate(monitor.rules)] or \
        default_rules(monitor.warn_share, monitor.critical_share)
    alerts = fire(rules, signals, state_path=state_path)
    report_id = new_id("mon")
    details: dict[str, Any] = {
        "drifted_columns": sorted({r.column for r in results if r.drifted}),
        "drifted_share": signals["drift.share"], "signals": signals, "health": hmetrics, "model": model,
        "windows": trend, "reference_rows": reference.rows, "current_rows": current.rows,
        "reference_label": reference.label, "current_label": current.label or current_id,
        "plots": plot_data(reference, current),
    }
    if send:
        errors = deliver(alerts, list(monitor.sinks), backends=backends, context=context, report_id=report_id)
        if errors:
            details["delivery_errors"] = errors
            findings.append(Finding(check="alerts.delivery", severity="warning", message=errors[0]))
    if launch:
        triggers = [Trigger.from_config(t, f"triggers[{i}]") for i, t in enumerate(monitor.triggers)]
        if monitor.retrain_chain and any(a["action"] == "retrain" and not a["suppressed"] for a in alerts):
            triggers.append(Trigger(type="drift", share=0.0, chain=monitor.retrain_chain))
        if triggers:
            details["triggers"] = run_triggers(triggers, signals, context=context)
        rolled = roll_back(monitor.rollback, deployment, alerts, backends=backends, context=context)
        if rolled:
            details["rollback"] = rolled
    report = MonitorReport(id=report_id, reference_id=reference_id, current_id=current_id, verdict=verdict_of(alerts),
                           results=tuple(results), findings=tuple(findings), details=details, profile_id=profile_id,
                           alerts=tuple(alerts))
    if monitor.html:
        path = context.resolve_path(monitor.html)
        write_html(report, path)
        if context.workspace is not None:
            ref = context.storage.put_bytes(path.read_bytes(), suffix=".html", media_type="text/html")
            report = attrs.evolve(report, report=ref)
    return report


def reference_for_snapshot(snapshot, monitor: DriftMonitor, context):
    """The stored profile of ``snapshot`` with this monitor's settings, built once."""
    from .monitor_windows import (
        ProfileBuilder,
        load_profile,
        save_profile,
        stored_batches,
        time_range,
    )

    skip = tuple(monitor.exclude) + tuple(snapshot.key_columns)
    window = ""
    if monitor.reference_range:
        start, end = monitor.reference_range
        window = f" range=[{start.isoformat() if start else ''},{end.isoformat() if end else ''})"
    source = f"snapshot:{snapshot.id} exclude={sorted(skip)} columns={sorted(monitor.columns)}{window}"
    for rec in context.store.find("profile"):
        if (rec.snapshot_id == snapshot.id and rec.sketch_size == monitor.sketch_size
                and rec.max_categories == monitor.max_categories and rec.source == source):
            return rec, load_profile(context.workspace, rec)
    time_column = monitor.time_column or snapshot.time_column
    builder = ProfileBuilder(time_column=time_column, **monitor.builder_args(exclude=tuple(snapshot.key_columns)))
    batches = (b for ref in snapshot.objects for b in stored_batches(context.workspace, ref))
    if monitor.reference_range:
        if not time_column:
            raise ConfigError(f"reference_range: snapshot {snapshot.id} has no time column; set time_column")
        batches = time_range(batches, time_column, *monitor.reference_range)
    for batch in batches:
        builder.add(batch)
    profile = builder.finish(label=f"snapshot {snapshot.id}")
    rec = save_profile(context.workspace, profile, name=monitor.profile_name or snapshot.name,
                       snapshot_id=snapshot.id, sketch_size=monitor.sketch_size, max_categories=monitor.max_categories,
                       source=source,
                       run_id=context.run.id if context.run else None)
    return rec, profile


@hookimpl(trylast=True)
def tether_monitor(reference, current, deployment, stage, context):
    from .monitor_windows import DeploymentWindow, SnapshotWindow, find_profile, load_profile

    monitor = context.backend(stage)
    if monitor.reference_profile:
        rec = find_profile(context.workspace, monitor.reference_profile)
        ref_profile = load_profile(context.workspace, rec)
    elif reference is not None:
        rec, ref_profile = reference_for_snapshot(reference, monitor, context)
    else:
        raise ConfigError(f"{stage.where}: the monitor needs a reference snapshot or params.reference_profile")
    if monitor.current and monitor.current.get("plugin") == "deployment" and deployment is not None \
            and not (monitor.current.get("params") or {}).get("deployment"):
        source = DeploymentWindow(deployment=deployment.id)  # this chain's deployment
    elif monitor.current:
        source = context.create("window", monitor.current.get("plugin", ""), monitor.current.get("params"),
                                where=f"{stage.where}.params.current")
    elif current is not None:
        source = SnapshotWindow(snapshot=current.id)
    elif deployment is not None:
        source = DeploymentWindow(deployment=deployment.id)
    else:
        raise ConfigError(f"{stage.where}: no current window: add a snapshot stage, or set params.current")
    keys = tuple(reference.key_columns) if reference is not None else ()
    metrics = None
    if deployment is not None and monitor.model:
        mv = context.store.get(deployment.model_version_id, kind="model_version")
        metrics = dict(mv.metrics) if mv else None
    state = context.workspace.root / "monitor" / f"alerts-{(context.chain.name if context.chain else 'adhoc')}.json"

    def frame_loader():
        import pyarrow as pa

        return pa.Table.from_batches(list(source.batches(context=context))).to_pandas()

    return run_monitor(monitor, reference=ref_profile, current_batches=source.batches(context=context),
                       context=context, reference_id=reference.id if reference is not None else rec.id,
                       current_id=getattr(current, "id", None) or source.describe(), profile_id=rec.id,
                       deployment=deployment, time_column=source.time_column_of(context=context)
                       or (reference.time_column if reference is not None else None),
                       key_columns=keys, reference_metrics=metrics, current_frame_loader=frame_loader,
                       state_path=state)


@hookimpl
def tether_add_backends(backends):
    backends.add(DriftMonitor)


@hookimpl
def tether_add_commands(cli):
    from .monitor_cli import add_commands

    add_commands(cli)
