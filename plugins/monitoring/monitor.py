"""The ``drift`` monitor (backend kind ``monitor``): drift tests, data health, model
behaviour, windows and alerts, as one ``MonitorReport``.

In a chain the reference is the ``reference`` snapshot (by default the training
snapshot), profiled once and stored as a ``profile`` record that later runs reuse, or a
stored profile named in ``windows.reference_profile``. The current window is read through
a window source (backend kind ``window``): ``windows.current: {plugin, params}`` if given,
else the ``current`` snapshot, else the deployment's prediction table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import Monitor
from tether.errors import ConfigError, DataError, PluginError
from tether.log import get_logger
from tether.records import Finding, MonitorReport, new_id
from tether.validators import at_least

from .alerts import fire, verdict_of
from .params import AlertParams, DriftParams, HealthParams, ModelParams, WindowParams


@attrs.frozen(kw_only=True)
class DriftMonitor(Monitor):
    """Drift tests, data health, model behaviour, windows and alerts (see docs/monitoring.md)."""

    name: ClassVar[str] = "drift"
    #: a chain's engine profiles a current window read from a Parquet file or folder
    engine_operations: ClassVar[tuple[str, ...]] = ("profile",)
    columns: tuple[str, ...] = ()  # empty: every shared column except time and key columns
    exclude: tuple[str, ...] = ()
    time_column: str | None = None  # default: the snapshot's / source's time column
    workers: int = attrs.field(default=2, validator=at_least(1))  # threads for sketches and tests
    html: str | None = None  # write the HTML report here
    drift: DriftParams = attrs.field(factory=DriftParams)
    windows: WindowParams = attrs.field(factory=WindowParams)
    health: HealthParams = attrs.field(factory=HealthParams)
    model: ModelParams = attrs.field(factory=ModelParams)
    alerts: AlertParams = attrs.field(factory=AlertParams)

    # --- the Monitor contract -------------------------------------------------------------

    def preflight(self, *, context) -> None:
        """Build every backend the params name, before the run is recorded."""
        self.check_backends(context, params_path(context))

    def check_backends(self, context, base: str) -> None:
        """Build the alert sinks, the rollback, the current window source and the drift tests
        the params name, so an unknown plugin or a bad parameter fails now, naming its key
        path under ``base`` (e.g. ``chain.yaml: stages[3].params``), not when an alert fires."""
        for i, sink in enumerate(self.alerts.sinks):
            context.create("alert_sink", sink["plugin"], sink.get("params"), where=_key(base, f"alerts.sinks[{i}]"))
        if self.alerts.rollback:
            spec = self.alerts.rollback
            context.create("rollback", spec["plugin"], spec.get("params"), where=_key(base, "alerts.rollback"))
        if self.windows.current:
            spec = self.windows.current
            context.create("window", spec["plugin"], spec.get("params"), where=_key(base, "windows.current"))
        params = self.drift.test_params
        for name in params:
            _flat_create(context, name, params[name], _key(base, f"drift.test_params.{name}"))
        for column, names in self.drift.tests.items():
            for name in names:
                test = _flat_create(context, name, params.get(name), _key(base, f"drift.tests.{column}"))
                if test.multivariate:
                    raise ConfigError(f"{_key(base, f'drift.tests.{column}')}: '{name}' is multivariate; "
                                      "list it under drift.multivariate")
        for i, name in enumerate(self.drift.multivariate):
            if not _flat_create(context, name, params.get(name), _key(base, f"drift.multivariate[{i}]")).multivariate:
                raise ConfigError(f"{_key(base, f'drift.multivariate[{i}]')}: '{name}' is a per-column test; "
                                  "list it under drift.tests")

    def check_columns(self, reference, current, base: str = "") -> None:
        """DataError when ``columns`` names a column in neither profile. (A column only the
        current window has is watched there, e.g. a model's score; one only the reference
        has is a ``schema.removed`` finding.)"""
        known = list(reference.types) + [c for c in current.schema or current.types if c not in reference.types]
        missing = [c for c in self.columns if c not in known]
        if missing:
            raise DataError(f"{_key(base, 'columns')}: '{missing[0]}' is in neither the reference nor the current "
                            f"window (columns: {', '.join(known) or 'none'})")

    def run(self, *, reference, current, deployment, context) -> MonitorReport:
        """Monitor ``current`` (or the deployment's predictions) against ``reference``."""
        where = context.stage.where if context.stage is not None else "monitor"
        rec, ref_profile = self._reference(reference, context, where)
        source = self._current_source(current, deployment, context, where)

        def frame_loader():
            import pyarrow as pa

            return pa.Table.from_batches(list(source.batches(context=context))).to_pandas()

        chain = context.chain.name if context.chain else "adhoc"
        return self.check(
            reference=ref_profile, current_batches=source.batches(context=context), context=context,
            reference_id=reference.id if reference is not None else rec.id,
            current_id=getattr(current, "id", None) or source.describe(), profile_id=rec.id, deployment=deployment,
            time_column=source.time_column_of(context=context) or getattr(reference, "time_column", None),
            key_columns=tuple(reference.key_columns) if reference is not None else (),
            reference_metrics=self._registered_metrics(deployment, context), current_frame_loader=frame_loader,
            state_path=context.workspace.root / "monitor" / f"alerts-{chain}.json")

    def _reference(self, reference, context, where: str):
        from .profile_store import find_profile, load_profile

        if self.windows.reference_profile:
            rec = find_profile(context.workspace, self.windows.reference_profile)
            return rec, load_profile(context.workspace, rec)
        if reference is not None:
            return self.reference_for_snapshot(reference, context)
        raise ConfigError(f"{where}: the monitor needs a reference snapshot or params.windows.reference_profile")

    def _current_source(self, current, deployment, context, where: str):
        from .windows import DeploymentWindow, SnapshotWindow

        spec = self.windows.current
        if spec and spec.get("plugin") == "deployment" and deployment is not None \
                and not (spec.get("params") or {}).get("deployment"):
            return DeploymentWindow(deployment=deployment.id)  # this chain's deployment
        if spec:
            return context.create("window", spec.get("plugin", ""), spec.get("params"),
                                  where=f"{where}.params.windows.current")
        if current is not None:
            return SnapshotWindow(snapshot=current.id)
        if deployment is not None:
            return DeploymentWindow(deployment=deployment.id)
        raise ConfigError(f"{where}: no current window: add a snapshot stage, or set params.windows.current")

    def _registered_metrics(self, deployment, context) -> dict[str, float] | None:
        """The evaluation metrics of the deployed model version, to compare estimates with."""
        if deployment is None or not self.model.enabled:
            return None
        mv = context.store.get(deployment.model_version_id, kind="model_version")
        return dict(mv.metrics) if mv else None

    # --- reference profiles ----------------------------------------------------------------

    def builder_args(self, exclude=()) -> dict[str, Any]:
        """The :class:`~.profiles.ProfileBuilder` settings of this monitor."""
        return {"columns": tuple(self.columns), "exclude": tuple(self.exclude) + tuple(exclude),
                "sketch_size": self.drift.sketch_size, "max_categories": self.drift.max_categories,
                "sample_rows": self.drift.sample_rows, "workers": self.workers}

    def profile(self, batches, *, label: str = "", time_column: str | None = None, exclude=()):
        """A :class:`~.profiles.DataProfile` of ``batches`` with this monitor's settings."""
        from .profiles import ProfileBuilder

        builder = ProfileBuilder(time_column=self.time_column or time_column, **self.builder_args(exclude=exclude))
        for batch in batches:
            builder.add(batch)
        return builder.finish(label=label)

    def reference_for_snapshot(self, snapshot, context):
        """The stored profile of ``snapshot`` with this monitor's settings, built once."""
        from .profile_store import load_profile, save_profile
        from .profiles import time_range
        from .windows import stored_batches

        source = self._profile_source(snapshot)
        for rec in context.store.find("profile"):
            if (rec.snapshot_id == snapshot.id and rec.sketch_size == self.drift.sketch_size
                    and rec.max_categories == self.drift.max_categories and rec.source == source):
                return rec, load_profile(context.workspace, rec)
        time_column = self.time_column or snapshot.time_column
        batches = (b for ref in snapshot.objects for b in stored_batches(context.workspace, ref))
        if self.windows.reference_range:
            if not time_column:
                raise ConfigError(f"reference_range: snapshot {snapshot.id} has no time column; set time_column")
            batches = time_range(batches, time_column, *self.windows.reference_range)
        profile = self.profile(batches, label=f"snapshot {snapshot.id}", time_column=time_column,
                               exclude=tuple(snapshot.key_columns))
        rec = save_profile(context.workspace, profile, name=self.windows.profile_name or snapshot.name,
                           snapshot_id=snapshot.id, sketch_size=self.drift.sketch_size,
                           max_categories=self.drift.max_categories, source=source,
                           run_id=context.run.id if context.run else None)
        return rec, profile

    def _profile_source(self, snapshot) -> str:
        """What a stored profile was made of; profiles with the same source are reused."""
        skip = tuple(self.exclude) + tuple(snapshot.key_columns)
        window = ""
        if self.windows.reference_range:
            start, end = self.windows.reference_range
            window = f" range=[{start.isoformat() if start else ''},{end.isoformat() if end else ''})"
        return f"snapshot:{snapshot.id} exclude={sorted(skip)} columns={sorted(self.columns)}{window}"

    # --- one report ------------------------------------------------------------------------

    def check(self, *, reference, current_batches, context, reference_id: str, current_id: str,
              profile_id: str | None = None, deployment=None, time_column: str | None = None,
              key_columns=(), reference_metrics: dict[str, float] | None = None,
              current_frame_loader=None, state_path: Path | None = None, send: bool = True,
              launch: bool = True) -> MonitorReport:
        """Profile the current window (chunk by chunk), compare, check, alert; return the report."""
        from .compare import compare
        from .health import health
        from .model import model_section
        from .report import plot_data
        from .signals import signals_of

        time_column = self.time_column or time_column
        current, windows = self._profile_current(current_batches, time_column, key_columns)
        if current.schema or current.types:  # an empty file without a schema is a volume.empty finding
            self.check_columns(reference, current, params_path(context))
        results, findings = compare(reference, current, multivariate=tuple(self.drift.multivariate),
                                    **self._compare_args(context))
        hfindings, hmetrics = health(reference, current, self._health_params(context, current))
        findings = hfindings + findings
        model = model_section(self.model, reference, current, reference_metrics=reference_metrics, context=context,
                              current_frame_loader=current_frame_loader or (lambda: None))
        signals = signals_of(results, findings, current.rows, hmetrics, model)
        alerts = fire(self.alerts.alert_rules(), signals, state_path=state_path)
        report_id = new_id("mon")
        details: dict[str, Any] = {
            "drifted_columns": sorted({r.column for r in results if r.drifted}),
            "drifted_share": signals["drift.share"], "signals": signals, "health": hmetrics, "model": model,
            "windows": self._trend(reference, windows, context), "reference_rows": reference.rows,
            "current_rows": current.rows, "reference_label": reference.label,
            "current_label": current.label or current_id, "plots": plot_data(reference, current),
        }
        if send:
            findings += _deliver(self.alerts, alerts, details, context=context, report_id=report_id)
        if launch:
            details.update(_launch(self.alerts, alerts, signals, deployment=deployment, context=context))
        report = MonitorReport(id=report_id, reference_id=reference_id, current_id=current_id,
                               verdict=verdict_of(alerts), results=tuple(results), findings=tuple(findings),
                               details=details, profile_id=profile_id, alerts=tuple(alerts))
        return _with_html(report, self.html, context) if self.html else report

    def _profile_current(self, batches, time_column: str | None, key_columns):
        """The current window's profile (only the columns the reference monitors) and, with
        ``windows.every``, one profile per window."""
        from .profiles import merge_profiles, profile_batches, profile_windows, time_range

        partitioned = self._profile_on_engine(batches, time_column, key_columns)
        if partitioned is not None:
            return partitioned, []
        if self.windows.current_range:
            if not time_column:
                raise ConfigError("current_range needs a time column; set time_column")
            batches = time_range(batches, time_column, *self.windows.current_range)
        args = self.builder_args(exclude=tuple(key_columns))
        windows = []
        if self.windows.every != "none":
            if not time_column:
                raise ConfigError(f"windows.every: {self.windows.every} needs a time column; set time_column")
            windows = profile_windows(batches, every=self.windows.every, time_column=time_column, **args)
            current = merge_profiles(windows) if windows else profile_batches([], time_column=time_column, **args)
        else:
            current = profile_batches(batches, time_column=time_column, **args)
        # the reference's profile already excludes time and key columns
        for name in [c for c in current.columns if c in set(key_columns) or c == time_column]:
            current.columns.pop(name)
            current.types.pop(name, None)
        return current, windows

    def _profile_on_engine(self, batches, time_column: str | None, key_columns):
        """The current window profiled by the chain's engine (sketches and the row sample per
        partition, merged), or ``None`` when it must be read here: ``windows.every`` (one
        profile per day or week) and ``current_range`` (a time filter before profiling) select
        rows by time, which the engine's ``profile`` operation (one profile of every row of
        the path) does not do."""
        from tether.plugins.engines.partitions import PartitionedBatches

        if not isinstance(batches, PartitionedBatches):
            return None
        if self.windows.every != "none" or self.windows.current_range:
            get_logger("tether.monitor").warning(
                "stage runs locally", engine=batches.engine.name,
                reason="windows.every and current_range select rows by time; the engine profiles every row")
            return None
        current = batches.engine.profile(batches.path, time_column=time_column,
                                         **self.builder_args(exclude=tuple(key_columns)))
        for name in [c for c in current.columns if c in set(key_columns) or c == time_column]:
            current.columns.pop(name)
            current.types.pop(name, None)
        return current

    def _compare_args(self, context) -> dict[str, Any]:
        return {"backends": context.host.backends, "tests": self.drift.tests, "test_params": self.drift.test_params,
                "columns": tuple(self.columns), "workers": self.workers}

    def _health_params(self, context, current) -> HealthParams:
        expect = definition_expectations(context, set(current.columns)) if self.health.definitions else {}
        return attrs.evolve(self.health, expect={**expect, **self.health.expect})

    def _trend(self, reference, windows, context) -> list[dict[str, Any]]:
        """Per window: rows, drifted columns, drifted share and every column's statistic."""
        from .compare import compare

        trend = []
        for w in windows:
            results, _ = compare(reference, w, **self._compare_args(context))
            cols = {r.column for r in results}
            drifted = sorted({r.column for r in results if r.drifted})
            trend.append({"window": w.label, "rows": w.rows, "drifted": drifted,
                          "drift_share": len(drifted) / len(cols) if cols else 0.0,
                          "statistics": {r.column: r.statistic for r in results}})
        return trend


def params_path(context) -> str:
    """The key path of this monitor's params in errors: ``chain.yaml: stages[3].params``."""
    if context is None or context.stage is None:
        return ""
    chain = context.chain
    source = f"{chain.path}: " if chain is not None and chain.path else ""
    return f"{source}{context.stage.where}.params"


def _key(base: str, key: str) -> str:
    return f"{base}{key}" if not base or base.endswith(" ") else f"{base}.{key}"


def _flat_create(context, name: str, params, where: str):
    """A drift test named at ``where`` whose value is the test's params themselves, so errors
    read ``drift.test_params.ks.threshold`` rather than ``...ks.params.threshold``."""
    try:
        return context.create("drift", name, params, where=where)
    except (ConfigError, PluginError) as exc:
        raise type(exc)(str(exc).replace(f"{where}.params", where).replace(f"{where}.plugin", where)) from None


def _deliver(params: AlertParams, alerts, details: dict[str, Any], *, context, report_id: str) -> list[Finding]:
    """Send the alerts; delivery errors go into ``details`` and come back as findings."""
    from .sinks import deliver

    errors = deliver(alerts, list(params.sinks), backends=context.host.backends, context=context,
                     report_id=report_id)
    if not errors:
        return []
    details["delivery_errors"] = errors
    return [Finding(check="alerts.delivery", severity="warning", message=errors[0])]


def _launch(params: AlertParams, alerts, signals, *, deployment, context) -> dict[str, Any]:
    """Run the retraining triggers and the rollback action; what happened, for ``details``."""
    from .triggers import Trigger, roll_back, run_triggers

    out: dict[str, Any] = {}
    triggers = params.trigger_list()
    if params.retrain_chain and any(a["action"] == "retrain" and not a["suppressed"] for a in alerts):
        triggers.append(Trigger(type="drift", share=0.0, chain=params.retrain_chain))
    if triggers:
        out["triggers"] = run_triggers(triggers, signals, context=context)
    rolled = roll_back(params.rollback, deployment, alerts, backends=context.host.backends, context=context)
    if rolled:
        out["rollback"] = rolled
    return out


def _with_html(report: MonitorReport, html: str, context) -> MonitorReport:
    """Write the HTML report; inside a workspace also store it as the report's object."""
    from .report import write_html

    path = context.resolve_path(html)
    write_html(report, path)
    if context.workspace is None:
        return report
    ref = context.storage.put_bytes(path.read_bytes(), suffix=".html", media_type="text/html")
    return attrs.evolve(report, report=ref)


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
