"""Tracking: what a run logs, fanned out to its trackers, and the Python API.

A run has one :class:`ActiveRun`: the run record being built plus its trackers, the
always-on ``store`` tracker first, then those a chain lists under ``trackers:``. The
runner feeds it (params, stage outputs, evaluation metrics); a user's code feeds it
through :func:`start_run` or, inside a chain step, ``context.tracker``::

    import tether

    with tether.start_run(name="sweep", params={"lr": 0.1}, tags={"team": "risk"}) as run:
        for epoch in range(10):
            run.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
        run.note(hypothesis="a smaller lr converges", decision="keep lr=0.1")

Metrics are buffered in memory and written in one transaction per flush: when
:data:`FLUSH_ROWS` values are pending, when :data:`FLUSH_SECONDS` have passed since the
last flush (checked at each log call), when the runner finishes a stage, and at ``end``
(and at interpreter exit for a run never ended). A process killed without running its
exit handlers (``SIGKILL``, ``os._exit``, power loss) loses what is unflushed: at most
the last :data:`FLUSH_ROWS` values or :data:`FLUSH_SECONDS` of logging, whichever is less;
the run then reads as ``crashed``. ``flush()`` makes everything logged so far durable.

An ``ActiveRun`` is used from one thread.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import math
import os
import sys
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError, StageError, TetherError
from .provenance import flatten

if TYPE_CHECKING:  # pragma: no cover
    from .context import RunContext
    from .records import ObjectRef, Run

#: flush once this many metric values are pending
FLUSH_ROWS = 1000
#: flush at the first log call this many seconds after the last flush
FLUSH_SECONDS = 1.0
_UTC = _dt.timezone.utc


@attrs.define
class _Entry:
    name: str
    tracker: Any
    on_error: str  # "raise" for the store tracker, else "warn" | "fail"


class ActiveRun:
    """A run in progress: its record and the trackers every call is fanned out to."""

    def __init__(self, record: Run, context: RunContext, trackers: Iterable[tuple[Any, str]]) -> None:
        self.record = record
        self.context = context
        # a tuple, replaced (never changed in place) when a tracker is dropped mid-call
        self._entries = tuple(_Entry(getattr(t, "name", type(t).__name__), t, on_error) for t, on_error in trackers)
        self._latest: dict[str, tuple[int, _dt.datetime, float]] = {}
        self._pending = 0
        self._last_flush = time.monotonic()
        self._dirty = False
        self._errors: list[str] = []
        self._started = self._ended = False
        self._owned: list[Any] = []  # things to close at end (a workspace opened by start_run)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def trackers(self) -> list[Any]:
        """The trackers still fed, the store tracker first."""
        return [entry.tracker for entry in self._entries]

    # -- fan-out -------------------------------------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        for entry in self._entries:
            try:
                getattr(entry.tracker, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported by tracker name below
                self._failed(entry, method, exc)

    def _failed(self, entry: _Entry, method: str, exc: Exception) -> None:
        if entry.on_error == "raise":
            raise exc
        text = str(exc).strip().splitlines()
        message = f"tracker '{entry.name}': {method}: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
        if entry.on_error == "fail":
            raise StageError(f"{message} (on_error: fail)") from exc
        self._entries = tuple(e for e in self._entries if e is not entry)
        self._errors.append(message)
        self.record = attrs.evolve(self.record, tracker_errors=tuple(self._errors))
        self._dirty = True
        self.context.log.warning("tracker dropped for the rest of the run", error=message)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ActiveRun:
        """Tell every tracker the run started, then its params and tags so far."""
        if self._started:
            return self
        self._started = True
        _OPEN.add(self)
        self._call("start_run", self.record, context=self.context)
        if self.record.params:
            self._call("log_params", self.id, dict(self.record.params))
        if self.record.tags:
            self._call("set_tags", self.id, dict(self.record.tags))
        return self

    def update(self, **fields: Any) -> None:
        """Change fields of the run record (saved at the next flush)."""
        self.record = attrs.evolve(self.record, **fields)
        self._dirty = True

    def flush(self) -> None:
        """Write everything logged so far (metrics in one transaction, then the record)."""
        self._pending, self._last_flush = 0, time.monotonic()
        self._call("flush", self.id)
        if self._dirty:
            self._dirty = False
            self.record = attrs.evolve(self.record, metrics=self.latest_metrics())
            self._call("update_run", self.record)

    def end(self, status: str = "succeeded", *, error: str | None = None) -> Run:
        """Flush and end the run with ``status``; the chain trackers are told first, so a
        failing one with ``on_error: fail`` turns the run ``failed`` before the store
        tracker writes the final record. Ending twice does nothing."""
        from .records import utcnow

        if self._ended:
            return self.record
        self._ended = True
        _OPEN.discard(self)
        failure: BaseException | None = None
        try:
            self.flush()
        except TetherError as exc:
            failure = exc
        final = self._final(status, error, failure)
        store, others = self._entries[:1], self._entries[1:]
        for entry in others:
            try:
                entry.tracker.end_run(final, status=final.status)
            except Exception as exc:  # noqa: BLE001
                try:
                    self._failed(entry, "end_run", exc)
                except TetherError as fatal:
                    failure = failure or fatal
                final = self._final(status, error, failure)
        final = attrs.evolve(final, ended_at=utcnow())
        self.record = final
        try:
            for entry in store:
                entry.tracker.end_run(final, status=final.status)
        finally:
            for owned in self._owned:
                owned.close()
        if failure is not None and status == "succeeded":
            raise failure
        return final

    def _final(self, status: str, error: str | None, failure: BaseException | None) -> Run:
        if failure is not None and status == "succeeded":
            status, error = "failed", str(failure)
        return attrs.evolve(self.record, status=status, error=error, metrics=self.latest_metrics(),
                            tracker_errors=tuple(self._errors))

    def __enter__(self) -> ActiveRun:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.end("succeeded")
        else:
            self.end("failed", error=_one_line(exc))

    # -- logging -------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, *, step: int | None = None, timestamp: Any = None) -> None:
        """Log one metric value (see :meth:`log_metrics`)."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None, timestamp: Any = None) -> None:
        """Log metric values at ``step`` (a series; ``None`` for a single value) and
        ``timestamp`` (an aware ``datetime``, naive ones taken as UTC; default: now). Values
        must be numbers (NaN is kept); per-slice metrics are named ``metric[column=value]``."""
        values = _check_metrics(metrics)
        if step is not None and (type(step) is not int or step < 0):
            step = _check_step(step)
        stamp = _utc(timestamp) if timestamp is not None else _dt.datetime.now(_UTC)
        order = -1 if step is None else step
        latest = self._latest
        for key, value in values.items():
            held = latest.get(key)
            if held is None or held[0] < order or (held[0] == order and held[1] <= stamp):
                latest[key] = (order, stamp, value)
        self._call("log_metrics", self.id, values, step=step, timestamp=stamp)
        self._pending += len(values)
        if self._pending >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def latest_metrics(self) -> dict[str, float]:
        """The latest value of every metric logged (highest step, then latest time)."""
        return {key: held[2] for key, held in sorted(self._latest.items())}

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params (nested mappings are flattened to ``a.b`` key paths)."""
        if not isinstance(params, Mapping):
            raise ConfigError(f"log_params: expected a mapping, got {type(params).__name__}", key="params")
        flat = flatten(params)
        self.update(params={**self.record.params, **flat})
        self._call("log_params", self.id, flat)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (text values; other values are converted with ``str``)."""
        if not isinstance(tags, Mapping):
            raise ConfigError(f"set_tags: expected a mapping, got {type(tags).__name__}", key="tags")
        clean = {_check_key(k, "set_tags"): "" if v is None else str(v) for k, v in tags.items()}
        self.update(tags={**self.record.tags, **clean})
        self._call("set_tags", self.id, clean)

    def note(self, *, hypothesis: str | None = None, decision: str | None = None) -> None:
        """Record why the run was made and what was decided from it (trackers receive
        them as tags ``note.hypothesis`` and ``note.decision``)."""
        given = {k: v for k, v in (("hypothesis", hypothesis), ("decision", decision)) if v is not None}
        for key, value in given.items():
            if not isinstance(value, str):
                raise ConfigError(f"note: {key} must be text, got {type(value).__name__}", key=key)
        if given:
            self.update(notes={**self.record.notes, **given})
            self._call("set_tags", self.id, {f"note.{k}": v for k, v in given.items()})

    def log_artifact(self, data: bytes | str | os.PathLike, *, name: str) -> ObjectRef:
        """Store a file (a path) or ``bytes`` in the workspace storage, content-addressed,
        and record it under ``name``; returns its ``ObjectRef``."""
        from .names import check_name

        check_name(name, "log_artifact: name", what="artifact name")
        storage = self.context.storage
        if isinstance(data, (bytes, bytearray, memoryview)):
            ref = storage.put_bytes(bytes(data))
        elif isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.is_file():
                raise ConfigError(f"log_artifact: '{path}' is not a file", key="path")
            ref = storage.put_file(path, suffix="".join(path.suffixes[-1:]))
        else:
            raise ConfigError(f"log_artifact: expected bytes or a file path, got {type(data).__name__}", key="data")
        self.log_ref(ref, name=name)
        release = getattr(storage, "release", None)
        if callable(release):
            release([ref.key])
        return ref

    def log_model_version(self, model_version: Any, *, status: str | None = None,
                          aliases: tuple[str, ...] = ()) -> None:
        """Tell the trackers a model version was registered (registry sync)."""
        self._call("log_model_version", model_version, status=status or model_version.status,
                   aliases=tuple(aliases))

    def log_ref(self, ref: ObjectRef, *, name: str) -> None:
        """Record an object already in the workspace storage as artifact ``name``."""
        self.update(artifacts={**self.record.artifacts, name: ref})
        self._call("log_artifact", self.id, ref, name=name)


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"{what}: keys must be non-empty strings, got {key!r}", key=str(key))
    return key


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise ConfigError(f"log_metrics: expected a mapping of name -> number, got {type(metrics).__name__}",
                          key="metrics")
    values: dict[str, float] = {}
    for key, value in metrics.items():
        kind = type(value)
        if type(key) is str and key and not key.isspace() and (kind is float or kind is int):
            values[key] = float(value)  # the common case, checked cheaply
            continue
        _check_key(key, "log_metrics")
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise ConfigError(f"log_metrics: {key}: expected a number, got {value!r}", key=key)
        values[key] = float(value)  # NaN and infinities are kept: a diverged loss is worth recording
    return values


def _check_step(step: Any) -> int:
    """A step given as another integer type (numpy's), or a ConfigError."""
    import numbers

    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ConfigError(f"log_metrics: step must be a non-negative integer or None, got {step!r}", key="step")
    return int(step)


def _utc(stamp: Any) -> _dt.datetime:
    if not isinstance(stamp, _dt.datetime):
        raise ConfigError(f"log_metrics: timestamp must be a datetime, got {type(stamp).__name__}", key="timestamp")
    return stamp.replace(tzinfo=_UTC) if stamp.tzinfo is None else stamp.astimezone(_UTC)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, TetherError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- what the runner feeds trackers ---------------------------------------------------------


def track_output(active: ActiveRun, stage: Any, record: Any) -> None:
    """Tell the trackers about one stage's output: its id as tag ``output.<stage id>``; a
    snapshot's or split's id (and seed) under ``data``; a model's artifact (as artifact
    ``<stage id>``), seed and framework version; a registered model version (to
    ``log_model_version``); an evaluation's metrics (plain names for
    a stage with id ``evaluate``, else ``<stage id>.<metric>``) and per-slice metrics
    ``<metric>[<slice>=<segment>]``."""
    from .provenance import distributions_of, package_versions

    kind, run = record.kind, active.record
    active.set_tags({f"output.{stage.id}": record.id})
    if kind == "snapshot":
        active.update(data={**run.data, stage.id: {"kind": "snapshot", "id": record.id, "name": record.name,
                                                   "fingerprint": record.fingerprint, "rows": record.num_rows}})
    elif kind == "split":
        active.update(data={**run.data, stage.id: {"kind": "split", "id": record.id, "snapshot_id": record.snapshot_id,
                                                   "seed": record.seed}})
        if record.seed is not None:
            active.update(seeds={**run.seeds, f"{stage.id}.seed": int(record.seed)})
    elif kind == "model":
        active.log_ref(record.artifact, name=stage.id)
        seed = record.params.get("random_state")
        if isinstance(seed, int) and not isinstance(seed, bool):
            active.update(seeds={**active.record.seeds, f"{stage.id}.random_state": seed})
        found = package_versions(distributions_of([record.framework]))
        if found:
            env = active.record.environment
            active.update(environment={**env, "packages": {**env.get("packages", {}), **found}})
    elif kind == "model_version":
        active.log_model_version(record)
    elif kind == "evaluation":
        prefix = "" if stage.id == "evaluate" else f"{stage.id}."
        metrics = {f"{prefix}{k}": v for k, v in record.metrics.items() if _finite(v)}
        for item in getattr(record, "slices", ()) or ():
            fields = item if isinstance(item, Mapping) else {k: getattr(item, k, None)
                                                             for k in ("slice", "segment", "metrics")}
            for name, value in (fields.get("metrics") or {}).items():
                if _finite(value):
                    metrics[f"{prefix}{name}[{fields.get('slice')}={fields.get('segment')}]"] = value
        if metrics:
            active.log_metrics(metrics)
        seed = (getattr(record, "bootstrap", None) or {}).get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            active.update(seeds={**active.record.seeds, f"{stage.id}.bootstrap_seed": seed})


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- runs in progress at exit -------------------------------------------------------------

_OPEN: weakref.WeakSet[ActiveRun] = weakref.WeakSet()
_ESCAPED: list[str] = []  # an exception that reached the top of the main thread


def _watch_uncaught() -> None:
    """Wrap ``sys.excepthook`` once, so a run left open by an uncaught exception ends ``failed``."""
    previous = sys.excepthook
    if getattr(previous, "_tether_watch", False):
        return

    def hook(exc_type, exc, tb) -> None:
        _ESCAPED.append(_one_line(exc))
        previous(exc_type, exc, tb)

    hook._tether_watch = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _end_open_runs() -> None:
    """At exit: end every run never ended, ``failed`` if an exception escaped."""
    for active in list(_OPEN):
        try:
            if _ESCAPED:
                active.end("failed", error=_ESCAPED[-1])
            else:
                active.end("succeeded")
        except Exception:  # noqa: BLE001, S110 - nothing left to report to at exit
            pass


atexit.register(_end_open_runs)


# --- the Python API ----------------------------------------------------------------------


def tracker_entries(host: Any, configs: Iterable[Any], instances: Iterable[Any] | None = None,
                    *, source: str = "start_run") -> list[tuple[Any, str]]:
    """``(tracker, on_error)`` pairs: the store tracker, then one per ``TrackerConfig``
    (built here unless ``instances``, already built by chain validation, are given)."""
    configs = list(configs)
    if instances is None:
        instances = [host.backends.create("tracker", c.plugin, c.params, where=f"{source}: trackers[{i}]")
                     for i, c in enumerate(configs)]
    return [(host.backends.create("tracker", "store", {}), "raise"),
            *((tracker, config.on_error) for tracker, config in zip(instances, configs))]


def start_run(name: str = "run", *, workspace: str | os.PathLike = ".tether", params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, trackers: Iterable[Mapping[str, Any]] = (),
              host: Any = None) -> ActiveRun:
    """Start a run named ``name`` in ``workspace`` and return it, started; use it as a
    context manager (``failed`` if the block raises) or call ``end()``. ``trackers``
    adds trackers like a chain's ``trackers:`` key."""
    from .context import RunContext
    from .liveness import this_process
    from .log import get_logger
    from .manager import PluginHost
    from .names import check_name
    from .provenance import code_version, environment
    from .records import Run, new_id
    from .workspace import Workspace

    check_name(name, "start_run: name", what="run name")
    for key, value in (("params", params), ("tags", tags)):
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"start_run: {key} must be a mapping, got {type(value).__name__}", key=key)
    _watch_uncaught()
    host = host or PluginHost()
    from .config import parse_trackers

    entries = tracker_entries(host, parse_trackers(list(trackers), "start_run"))
    ws = Workspace.open(host, workspace)
    clean_tags = {_check_key(k, "start_run: tags"): str(v) for k, v in (tags or {}).items()}
    run = Run(id=new_id("run"), chain=name, chain_digest="", status="running", code=code_version(Path.cwd()),
              environment=environment(), params=flatten(params or {}), tags=clean_tags, **this_process())
    context = RunContext(host=host, workspace=ws, run=run, log=get_logger("tether.run", run_id=run.id))
    active = ActiveRun(run, context, entries)
    context.tracker = active
    active._owned.append(ws)
    try:
        return active.start()
    except BaseException as exc:
        active.end("failed", error=_one_line(exc))
        raise
