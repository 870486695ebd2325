"""Backends: the classes plugins add, and the registry a chain picks them from.

A backend is an attrs class with two class variables, ``kind`` (what it is for) and
``name`` (what a chain writes after ``plugin:``); its attributes are the parameters a
chain passes under ``params:``. Plugins add backends with the ``tether_add_backends``
hook. The base class of each kind below is its contract: tether calls only the methods
documented there, so any class implementing them can stand in for a built-in one.

A backend that needs optional libraries lists their import names in ``requires`` and the
extra that installs them in ``extra``; it stays listed, and using it without the extra
fails with the exact ``pip install`` to run.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs

from .errors import ConfigError, PluginError, did_you_mean, reject_unknown_keys
from .extras import install_hint

if TYPE_CHECKING:  # pragma: no cover
    from .records import (
        DatasetSnapshot,
        Deployment,
        DriftResult,
        Evaluation,
        FeatureSet,
        Finding,
        ModelVersion,
        MonitorReport,
        ObjectRef,
        Run,
        TrainedModel,
    )

#: kind -> what it is for; ``tether plugins`` prints these.
KINDS: dict[str, str] = {
    "storage": "stores immutable, content-addressed objects",
    "store": "keeps records, runs and lineage (metadata store)",
    "source": "reads the data a snapshot captures",
    "split": "assigns rows to train/validation/test",
    "leakage": "checks a split for leakage",
    "featurizer": "builds the feature transform fitted on the training split",
    "evaluator": "computes metrics of a model on a held-out split",
    "registry": "registers model versions",
    "rollout": "puts a model version to work: batch scoring or a serving rollout (shadow, canary, blue-green)",
    "monitor": "compares a current window with a reference",
    "drift": "statistical test for a change in one column's distribution",
    "window": "reads a current window to monitor, in Arrow record batches",
    "alert_sink": "delivers alerts",
    "rollback": "rolls a monitored deployment back when an alert asks for it",
    "online_store": "serves the latest feature values per entity",
    "trace_sink": "keeps or exports the spans of LLM/RAG traces",
    "redactor": "masks personal data and secrets in trace text before it is kept",
    "tracker": "records a run's params, metrics, artifacts and tags (the store tracker is always on)",
    "analysis_signal": "judges a canary against the stable version between rollout steps",
    "engine": "runs a stage's partitioned work: locally (pandas/pyarrow) or on a cluster (Dask)",
}


class Backend:
    """Base of every backend; subclasses set ``kind`` (via their base) and ``name``.

    A backend used by a chain stage may define ``preflight(self, *, context)``. The runner
    calls it once per stage before the run is recorded, so bad input (a missing file, an
    unreachable server) fails with nothing written to the store.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    @classmethod
    def missing_requirements(cls) -> list[str]:
        return [mod for mod in cls.requires if importlib.util.find_spec(mod) is None]


def _abstract(self: Any, method: str) -> NotImplementedError:
    return NotImplementedError(f"{type(self).__qualname__} ({self.kind} backend '{self.name}') "
                               f"does not implement {method}()")


class Storage(Backend):
    """Immutable, content-addressed objects. Writes are atomic; every read is checked
    against the digest the ``ObjectRef`` records, raising ``IntegrityError`` on a mismatch
    and ``NotFoundError`` for a missing object. Keys never leave the storage root.

    ``put_file`` and ``temp_path`` (used by writers that stream, such as snapshots) have
    working defaults built on ``put_bytes``; override them to stream without holding a
    whole object in memory. Optional, used when present: ``verified_path(ref)`` (a local
    file already checked, for memory-mapped reads) and, for ``tether verify --gc``,
    ``iter_keys()``, ``digest_of_key(key)``, ``digest_in_key(key)``, ``age_of(key)``
    (seconds since written), ``delete(key)``, ``iter_temp()`` and ``delete_temp(name)``.
    A storage that lets gc run beside writers also has ``gc_lock()`` (a context manager gc
    holds while it marks and sweeps), ``leased()`` (the object keys and temp names live
    writers hold) and ``release(keys)``, which the runner calls once the record
    referencing those objects is committed (see docs/storage.md).
    """

    kind = "storage"

    def put_bytes(self, data: bytes, *, suffix: str = "", media_type: str = "application/octet-stream") -> ObjectRef:
        """Store ``data`` under a key derived from its digest; storing it twice is a no-op."""
        raise _abstract(self, "put_bytes")

    def read_bytes(self, ref: ObjectRef) -> bytes:
        """The object's bytes, after checking them against ``ref.digest``."""
        raise _abstract(self, "read_bytes")

    def put_file(self, path: str | os.PathLike, *, suffix: str = "", media_type: str = "application/octet-stream",
                 move: bool = False) -> ObjectRef:
        """Store the file at ``path`` (removing it afterwards with ``move``)."""
        path = Path(path)
        ref = self.put_bytes(path.read_bytes(), suffix=suffix, media_type=media_type)
        if move:
            path.unlink(missing_ok=True)
        return ref

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh local path a writer may stream to before ``put_file(..., move=True)``."""
        fd, name = tempfile.mkstemp(prefix="tether-", suffix=suffix)
        os.close(fd)
        return Path(name)

    def open(self, ref: ObjectRef) -> BinaryIO:
        """A binary file object for streaming reads (not verified; see ``verify``)."""
        raise _abstract(self, "open")

    def verify(self, ref: ObjectRef) -> None:
        """Re-hash the stored object; raise ``IntegrityError`` if it does not match."""
        raise _abstract(self, "verify")

    def describe(self) -> str:
        """Where the objects live, for messages (never include secrets)."""
        raise _abstract(self, "describe")


class MetadataStore(Backend):
    """Records, runs, lineage edges and metric series. Every write is one transaction: a
    record and its edges appear together or not at all. A store that was never written
    reads as empty. Records of the kinds in ``immutable_kinds`` never change once
    written. The built-in SQL stores keep their tables current with versioned migrations
    (``tether.plugins.sql_migrations``, see docs/storage.md).

    Audited changes (a model version, a status, alias or approval record, a deployment or
    its event) are written through ``tether.audit.put`` / ``put_versioned``. A store that
    sets ``atomic_audit`` takes their ``audit`` argument: a callable giving the change's
    ``tether.audit.Change`` from the record written, whose entry the store builds with
    ``tether.audit.next_entry(change, n, previous)`` and writes in the record's
    transaction, ``n`` and ``previous`` read from the ``audit_entry`` log named ``audit``
    under the same lock as ``put_versioned`` numbers it; so a change and its entry are
    both committed or neither is, and concurrent writers form one chain. On a store
    without it (``atomic_audit`` false, the default: stores written to the earlier
    contract) the entry is appended after the record commits, and a process killed in
    between leaves the change without its entry.
    """

    kind = "store"
    #: kinds ``put(..., replace=True)`` refuses (``StoreError``): registered model
    #: versions and audit entries change only by appending new records
    immutable_kinds: ClassVar[frozenset[str]] = frozenset({"model_version", "audit_entry"})
    #: whether ``put`` and ``put_versioned`` take ``audit`` (the change's audit entry
    #: written in the change's own transaction)
    atomic_audit: ClassVar[bool] = False

    def put(self, record: Any, *, parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
            replace: bool = False, audit: Callable[[Any], Any] | None = None) -> None:
        """Write ``record`` with edges ``(parent_id, relation)``; an existing id is kept
        unless ``replace`` (used for a run's final state). ``replace`` of a record whose
        kind is in ``immutable_kinds`` raises ``StoreError`` with nothing written. With
        ``audit`` (only if ``atomic_audit``), also the audit entry of ``audit(record)``,
        in the same transaction."""
        raise _abstract(self, "put")

    def put_metrics(self, run_id: str, rows: Iterable[tuple[str, float, int | None, str]]) -> None:
        """Append metric rows ``(key, value, step, timestamp_iso)`` of run ``run_id``, all in
        one transaction (many rows per call must be fast). ``step`` may be ``None``; the
        same key and step may be logged again. A malformed row raises ``DataError`` naming
        it, with nothing written."""
        raise _abstract(self, "put_metrics")

    def get_metrics(self, run_id: str, key: str | None = None) -> list[tuple[str, float, int | None, str]]:
        """The ``(key, value, step, timestamp_iso)`` rows of ``run_id`` (of one ``key`` if
        given), ordered by key, step (rows without a step first), timestamp, then the
        order written; an unknown run has none."""
        raise _abstract(self, "get_metrics")

    def latest_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """``{run_id: {key: value}}`` for every run asked for (``{}`` for one without
        metrics): the last value of each key, i.e. the row with the highest step (a row
        with a step beats one without), then the latest timestamp, then written last."""
        raise _abstract(self, "latest_metrics")

    def put_versioned(self, build: Callable[[int], Any], *, kind: str, name: str,
                      parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
                      unchanged: Callable[[Any], bool] | None = None,
                      audit: Callable[[Any], Any] | None = None) -> Any:
        """Write ``build(n)``, ``n`` being the next version number of ``name``, in one
        transaction that no concurrent writer can interleave; return the record. With
        ``unchanged``, the latest stored version of ``name`` (if any) is read in the same
        transaction; if ``unchanged(latest)`` is true nothing is written and ``latest`` is
        returned, so concurrent writers of the same content add one version, not several.
        With ``audit`` (only if ``atomic_audit``), the audit entry of ``audit(record)`` is
        written in that transaction too (none when nothing is written)."""
        raise _abstract(self, "put_versioned")

    def get(self, record_id: str, kind: str | None = None) -> Any:
        """The record with this id (of ``kind`` if given), or ``None``."""
        raise _abstract(self, "get")

    def find(self, kind: str, *, name: str | None = None, limit: int | None = None,
             prefix: str | None = None) -> list[Any]:
        """Records of ``kind``, newest first: those named ``name``, or whose id starts with
        ``prefix``, if given."""
        raise _abstract(self, "find")

    def lineage(self, record_id: str) -> dict[str, list[dict[str, Any]]]:
        """``{"upstream": [...], "downstream": [...]}`` edges with ``parent``, ``child``,
        ``relation``, ``kind`` and ``depth``."""
        raise _abstract(self, "lineage")

    def close(self) -> None:
        """Release connections; the store may be used again afterwards."""


class Source(Backend):
    """Reads the rows a snapshot captures."""

    kind = "source"
    #: what the snapshot stage records besides the rows: the dataset name (default: the
    #: stage id), the time column, the key columns and declared dataset-card fields
    dataset: str = ""
    time_column: str | None = None
    key: tuple[str, ...] = ()
    card: Mapping[str, Any] = MappingProxyType({})

    def read(self, *, context: Any) -> Any:
        """A ``pyarrow.Table`` or an iterable of ``pyarrow.RecordBatch`` (streamed in order)."""
        raise _abstract(self, "read")

    def describe(self) -> str:
        """What was read, shown on the dataset card (never include secrets)."""
        raise _abstract(self, "describe")


class SplitStrategy(Backend):
    """Assigns every row of a frame to a split.

    The split stage also reads the declarations below (``None`` / empty when a strategy
    does not take them as parameters): the leakage checks use ``entity_column``,
    ``time_column``, ``label``, ``features_from`` (a feature catalogue with availability
    times) and ``ignore_columns``; the manifest records ``seed`` and ``label_definition``;
    ``html`` is where the stage writes its report.
    """

    kind = "split"
    entity_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    label_definition: str = ""
    features_from: str | None = None
    ignore_columns: tuple[str, ...] = ()
    seed: int | None = None
    html: str | None = None

    def assign(self, frame: Any, *, context: Any) -> Any:
        """A ``pandas.Series`` aligned with ``frame`` of ``"train"``, ``"validation"``,
        ``"test"`` or ``"excluded"`` (a row deliberately left out, e.g. in a time gap).
        ``context`` may be ``None`` outside a run. The result must depend only on the rows
        and the parameters (use ``seed`` for randomness), so the split is reproducible."""
        raise _abstract(self, "assign")


class LeakageCheck(Backend):
    """Checks a split for leakage. Its attributes are the options a policy may set;
    ``default_action`` (``fail`` or ``warn``) applies when the policy does not name it."""

    kind = "leakage"
    default_action: ClassVar[str] = "fail"

    def check(self, data: Any) -> list[Finding]:
        """Findings about ``data`` (a ``tether.plugins.leakage.input.LeakageInput``: ``frame``,
        ``splits``, ``codes`` (0, 1, 2, or -1 for excluded), ``fingerprints``, the declared
        ``entity_column``, ``time_column`` and ``label``, the feature ``catalogue`` and
        ``ignore_columns``); none when there is nothing to report. Each finding has
        ``check`` (the backend's name), a one-line ``message``, capped ``evidence`` and a
        ``fix``; the policy sets its severity."""
        raise _abstract(self, "check")


class Featurizer(Backend):
    """Builds the feature transform that the featurize stage fits on the training rows only
    and stores as the artifact batch scoring and serving load unchanged. The fitted
    transform needs ``transform(frame)``, ``get_feature_names_out()`` and
    ``feature_names_in_``."""

    kind = "featurizer"
    #: A feature catalogue (YAML, relative to the chain) the featurize stage applies to the
    #: metadata store and validates the input columns against; ``None`` for none.
    catalogue: str | None = None
    #: Check the input columns against their definitions (from ``catalogue`` or stored).
    validate: bool = True
    #: Whether an ``error`` validation finding fails the stage (else it is only recorded).
    fail_on_findings: bool = True

    def build(self) -> Any:
        """A fresh, unfitted transform with ``fit``/``transform`` (e.g. an sklearn Pipeline)."""
        raise _abstract(self, "build")

    @property
    def input_columns(self) -> list[str]:
        """The columns ``fit``/``transform`` receive, in order."""
        raise _abstract(self, "input_columns")

    @property
    def label_column(self) -> str | None:
        """The label column, kept beside the features, or ``None``."""
        raise _abstract(self, "label_column")


class Evaluator(Backend):
    """Measures a trained model on a held-out split and decides whether it passes."""

    kind = "evaluator"

    def evaluate(self, model: TrainedModel, features: FeatureSet, *, context: Any) -> Evaluation:
        """An ``Evaluation`` of ``model`` on ``features``' held-out rows, with its metrics,
        ``passed`` and the findings (failed gates) that explain a failure."""
        raise _abstract(self, "evaluate")


class Registry(Backend):
    """Registers a trained model as the next version of a named model."""

    kind = "registry"

    def register(self, model: TrainedModel, evaluation: Evaluation | None, *, context: Any) -> ModelVersion:
        """Write and return the new ``ModelVersion``; refuse (raise ``StageError``) a model
        that must not be registered, e.g. one whose evaluation failed."""
        raise _abstract(self, "register")


class Rollout(Backend):
    """A rollout strategy: puts a model version to work in an environment.

    The deploy stage and ``tether deploy start`` call ``deploy``; the returned
    ``Deployment`` is written to the store with its lineage and audit entry. A batch
    strategy scores data and returns a ``completed`` deployment; a serving strategy
    (shadow, canary, blue-green) returns the deployment's starting state (``pending`` or
    ``active``, its weight and steps) that a router reads and advances
    (``tether.plugins.rollout.state``). ``environment`` names where it runs.
    """

    kind = "rollout"
    environment: str = "production"

    def deploy(self, model_version: ModelVersion, snapshot: DatasetSnapshot | None, *, context: Any) -> Deployment:
        """Deploy ``model_version`` (a batch strategy scores ``snapshot``); return the
        record, not yet stored."""
        raise _abstract(self, "deploy")


#: The earlier name of :class:`Rollout`; classes deriving from it are ``rollout`` backends.
Deployer = Rollout


class Monitor(Backend):
    """Compares a current window with a reference and returns a ``MonitorReport``."""

    kind = "monitor"

    def run(self, *, reference: DatasetSnapshot | None, current: DatasetSnapshot | None,
            deployment: Deployment | None, context: Any) -> MonitorReport:
        """Monitor ``current`` (or the deployment's predictions) against ``reference``."""
        raise _abstract(self, "run")


class DriftTest(Backend):
    """One statistical test on one column. Set the class variables ``threshold_type``
    (``p_value``, ``distance`` or ``std``), ``applies_to`` (``numeric``, ``categorical`` or
    ``both``) and ``version``; ``threshold`` is a parameter."""

    kind = "drift"
    version: ClassVar[str] = "1"
    threshold_type: ClassVar[str] = "p_value"
    applies_to: ClassVar[str] = "both"
    #: a multivariate test compares whole frames with ``run_frames`` instead of ``run``
    multivariate: ClassVar[bool] = False

    def run(self, column: str, ref: Any, cur: Any) -> DriftResult:
        """Compare two column sketches (``tether.plugins.monitoring.sketches.NumericSketch``
        / ``CategoricalSketch``) and return a ``DriftResult``."""
        raise _abstract(self, "run")

    def run_frames(self, reference: Any, current: Any, columns: list[str]) -> DriftResult:
        """For a multivariate test: compare samples of the two frames over ``columns``."""
        raise _abstract(self, "run_frames")


class Window(Backend):
    """Reads the current window a monitor compares with its reference."""

    kind = "window"

    def batches(self, *, context: Any) -> Iterator[Any]:
        """The window's rows as ``pyarrow.RecordBatch`` es, in bounded memory."""
        raise _abstract(self, "batches")

    def time_column_of(self, *, context: Any) -> str | None:
        """The window's time column, if it knows one."""
        return None

    def describe(self) -> str:
        """What the window is, for the report (never include secrets)."""
        raise _abstract(self, "describe")


class AlertSink(Backend):
    """Delivers alerts."""

    kind = "alert_sink"

    def send(self, alerts: list[dict[str, Any]], *, context: Any, report_id: str) -> None:
        """Deliver ``alerts`` raised by monitor report ``report_id``; raise on failure."""
        raise _abstract(self, "send")


class Rollback(Backend):
    """Rolls a monitored deployment back. A monitor with ``rollback: {plugin, params}``
    calls it once per report when an unsuppressed alert with action ``roll_back`` fires
    and the monitored window belongs to a deployment."""

    kind = "rollback"

    def rollback(self, deployment: Deployment, *, reason: str, context: Any) -> Deployment | None:
        """Roll back; return the deployment now serving, or ``None`` if there was nothing
        to roll back to."""
        raise _abstract(self, "rollback")


class AnalysisSignal(Backend):
    """One signal of the automatic analysis a server runs between canary steps: it compares
    the canary's window with the stable version's (same period, same traffic split) and
    says whether the canary is healthy on it. Its parameters are its thresholds, set per
    deployment under ``analysis.signals.<name>``; every signal a deployment names must be
    healthy for the canary to be promoted to its next step (see docs/serving.md).
    """

    kind = "analysis_signal"

    def measure(self, stable: Any, canary: Any, *, context: Any) -> dict[str, Any]:
        """Judge ``canary`` against ``stable``: two arm windows with ``arm``, ``version``,
        ``requests``, ``errors``, ``error_rate``, ``latencies_ms()`` (numpy array),
        ``outputs()`` and ``inputs()`` (pandas frames of the last requests). ``context``
        has ``backends``, ``workspace``, ``deployment`` and ``reference()`` (the model's
        reference profile, or ``None``). Return ``{"healthy": bool, "value": ...,
        "baseline": ..., "threshold": ..., "detail": "one line"}`` (json-able values); raise
        nothing for a missing sample, report it as healthy with a ``detail`` instead."""
        raise _abstract(self, "measure")


class OnlineStore(Backend):
    """Serves the latest value of every feature per entity (``view`` names a feature group).

    ``tether.plugins.online_store.lookups.materialize`` and ``get_online_features`` (used by
    serving lookups and the skew check) work through these methods only.
    """

    kind = "online_store"

    def check(self) -> None:
        """Raise ``StoreError`` if the store cannot be reached; called before every write."""
        raise _abstract(self, "check")

    def write(self, view: str, rows: Iterable[tuple[str, str, str, int]], *, entity: str,
              features: list[str]) -> int:
        """Store ``(entity_id, feature, json_value, feature_ts_ns)`` rows all-or-nothing; a
        stored value is replaced only by one with a newer feature timestamp, so writing the
        same rows again changes nothing. Record the view's entity column and features.
        Return how many values changed."""
        raise _abstract(self, "write")

    def read(self, view: str, entity_ids: list[str], features: list[str]) -> dict[tuple[str, str], tuple[str, int]]:
        """``{(entity_id, feature): (json_value, feature_ts_ns)}`` for the values that exist."""
        raise _abstract(self, "read")

    def view_info(self, view: str) -> dict[str, Any] | None:
        """``{"entity": ..., "features": [...]}``, or ``None`` for an unknown view."""
        raise _abstract(self, "view_info")

    def drop_view(self, view: str) -> None:
        """Delete every value of ``view``."""
        raise _abstract(self, "drop_view")

    def describe(self) -> str:
        """Where the values live (never include secrets)."""
        raise _abstract(self, "describe")


class Tracker(Backend):
    """Records what a run does: its start and end, params, metrics (with step and time),
    artifacts and tags. The built-in ``store`` tracker writes to the metadata store and is
    always on; a chain adds others under ``trackers:`` (``{plugin: NAME, params: {...}}``).

    tether calls these methods, in this order, for chain runs and ``tether.start_run``
    alike: ``start_run`` once; then any number of ``log_params``, ``log_metrics``,
    ``log_artifact``, ``set_tags`` and ``update_run``, with ``flush`` at the buffering
    thresholds; ``end_run`` once (after a last ``flush``). Calls come from one thread.
    ``log_metrics`` is called once per user call and must be cheap: buffer and write in
    ``flush``. Notes are tags named ``note.hypothesis`` and ``note.decision``. A tracker
    that raises is reported by name: with ``on_error: warn`` (default) it is dropped for
    the rest of the run and the failure is recorded in ``Run.tracker_errors``; with
    ``on_error: fail`` the run fails with an error naming it. Only ``start_run``,
    ``log_metrics`` and ``end_run`` are required; the others default to doing nothing.
    """

    kind = "tracker"

    def start_run(self, run: Run, *, context: Any) -> None:
        """A run started: ``run`` holds its id, name (``run.chain``), code, environment,
        data, params and tags so far. ``context`` is the run's ``RunContext``."""
        raise _abstract(self, "start_run")

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Parameters (flattened: ``train.C``, ``evaluate.min.roc_auc``); scalars or text."""

    def log_metrics(self, run_id: str, metrics: dict[str, float], *, step: int | None = None,
                    timestamp: Any = None) -> None:
        """Metric values at ``step`` (``None``: not a series) and ``timestamp`` (an aware UTC
        ``datetime``). Per-slice metrics are named ``metric[column=value]``."""
        raise _abstract(self, "log_metrics")

    def log_artifact(self, run_id: str, ref: ObjectRef, *, name: str) -> None:
        """A content-addressed object (already in the workspace storage) the run produced."""

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Tags; tether sets ``output.<stage id>`` to each stage's output record id."""

    def update_run(self, run: Run) -> None:
        """The run record changed (a stage finished; params, tags or notes were added)."""

    def flush(self, run_id: str) -> None:
        """Write what is buffered; called at the size and time thresholds and before ``end_run``."""

    def end_run(self, run: Run, *, status: str) -> None:
        """The run ended with ``status`` (``succeeded`` or ``failed``); ``run`` is final."""
        raise _abstract(self, "end_run")

    def log_model_version(self, model_version: ModelVersion, *, status: str, aliases: tuple[str, ...]) -> None:
        """A model version was registered (the runner calls it after each register stage,
        with the status it was registered with), for registry sync."""


class TraceSink(Backend):
    """Keeps or exports trace spans (see docs/traces.md for the span dict).

    The tracer's background thread calls ``write`` with batches of finished spans, already
    made JSON-safe, truncated and redacted; a sink may be slow or raise (the spans of that
    batch are then counted as lost for this sink) but must not hold on to a span dict
    after ``write`` returns. ``open(host=...)``, if defined, is called once before the
    first write, in the thread that starts tracing, so bad settings fail early.
    """

    kind = "trace_sink"

    def write(self, spans: list[dict[str, Any]]) -> None:
        """Keep ``spans`` (dicts with ``trace_id``, ``span_id``, ``parent_id``, ``type``,
        ``name``, ``start_ns``, ``end_ns``, ``duration_ms``, ``status``, ``error`` and
        ``attributes``); raise on failure."""
        raise _abstract(self, "write")

    def close(self) -> None:
        """Write anything buffered and release connections and files."""


class Redactor(Backend):
    """Masks sensitive text in traces. The tracer calls ``redact`` on every string of a
    span (its name, each attribute value at any depth, the error message) before any
    sink sees it. If ``redact`` raises, the whole span is masked (see docs/traces.md)."""

    kind = "redactor"

    def redact(self, text: str) -> str:
        """``text`` with what must not be kept replaced (e.g. by ``[EMAIL]``)."""
        raise _abstract(self, "redact")


class Engine(Backend):
    """Where a stage's heavy, partitioned work runs: a chain's ``engine: {plugin: NAME,
    params: {...}}`` (or ``--engine NAME``); the default ``local`` engine runs in the
    process. Stages ask ``context.engine_for(operation)``.

    An engine runs the operations in ``operations``, each the method of the same name
    (``read`` is :meth:`record_batches`; ``path`` is a Parquet file or folder, hive
    partitions allowed); a stage asking for another runs it locally and logs one line
    saying why. Results equal the local engine's (ids, findings, predictions; statistics
    within docs/scaling.md's tolerances). A failure of the engine itself (a lost worker,
    an unreachable scheduler) is an ``EngineError``; the runner calls ``close`` at the end.
    """

    kind = "engine"
    #: the operations this engine runs: a subset of ``read``, ``write_parts``, ``profile``,
    #: ``exact_duplicates``, ``entity_overlap``, ``near_duplicates``, ``score``, ``point_in_time_join``
    operations: ClassVar[frozenset[str]] = frozenset()

    def supports(self, operation: str) -> bool:
        """Whether this engine runs ``operation`` (else the stage runs it locally)."""
        return operation in self.operations

    def record_batches(self, path: str | os.PathLike, *, batch_rows: int) -> Iterator[Any]:
        """The rows of ``path`` as ``pyarrow.RecordBatch`` es in file order, each file's
        rows conformed to the dataset schema, in bounded memory."""
        raise _abstract(self, "record_batches")

    def write_parts(self, path: str | os.PathLike, *, schema: Callable[[Any], Any],
                    part_path: Callable[[int], str | os.PathLike]) -> Iterator[tuple[Any, str, int]]:
        """A snapshot's objects encoded by the workers: each partition cast to
        ``schema(dataset_schema)`` (called once, first) and written as one Parquet part (the
        snapshot writer's settings) into ``part_path(index)``, a file the caller created and
        the worker opens without creating. Yields ``(table, path, rows)`` in partition order,
        a bounded number outstanding; the workers share the file system of ``part_path``."""
        raise _abstract(self, "write_parts")

    def profile(self, path: str | os.PathLike, **builder: Any) -> Any:
        """A ``tether.plugins.monitoring.profiles.DataProfile`` of ``path``; ``builder`` are
        ``ProfileBuilder`` settings (``time_column``, ``exclude``, ``sketch_size``, ...)."""
        raise _abstract(self, "profile")

    def exact_duplicates(self, path: str | os.PathLike, *, split_column: str,
                         ignore_columns: tuple[str, ...] = ()) -> Any:
        """Rows of ``path`` identical (over every column but ``split_column`` and
        ``ignore_columns``) to a row of another split, as a
        ``tether.plugins.leakage.duplicates.DuplicateGroups``."""
        raise _abstract(self, "exact_duplicates")

    def entity_overlap(self, path: str | os.PathLike, *, split_column: str, entity_column: str,
                       sample: int = 50) -> Any:
        """Entities with rows in more than one split (split names read as ``tether leakage``
        reads them) as a ``tether.plugins.leakage.entities.SharedEntities`` (the first
        ``sample`` entities and rows), which ``EntityOverlap.findings`` turns into a finding."""
        raise _abstract(self, "entity_overlap")

    def near_duplicates(self, path: str | os.PathLike, *, split_column: str,
                        ignore_columns: tuple[str, ...] = (), **options: Any) -> Any:
        """Rows near a row of another split over every column but ``split_column`` and
        ``ignore_columns``, as a ``tether.plugins.leakage.near_duplicates.NearPairs``, which
        ``NearDuplicates.findings`` turns into a finding; ``options`` are that check's
        (``max_pairs`` bounds each partition's join)."""
        raise _abstract(self, "near_duplicates")

    def score(self, path: str | os.PathLike, bundle: Any, *, kept: list[str], version_id: str,
              output: str | os.PathLike) -> dict[str, Any]:
        """Score ``path`` with a loaded bundle into the folder ``output`` (Parquet parts in
        input order, written under temporary names and renamed when all succeeded);
        return ``{"rows": n, "parts": [paths]}`` and the prediction summary."""
        raise _abstract(self, "score")

    def point_in_time_join(self, entities: str | os.PathLike, features: str | os.PathLike, *,
                           output: str | os.PathLike, **join: Any) -> dict[str, Any]:
        """``tether.plugins.features.pit.point_in_time_join`` of two Parquet datasets
        (``join``: ``entity``, ``prediction_time``, ``feature_time``, ``lag``, ``ttl``,
        ``columns``, ``available_at``, ``duplicates``) into the folder ``output``: Parquet
        parts, each with every row of some entities, sorted by the entity table's row
        number in column ``__tether_entity_row``. Return ``{"rows": n, "parts": [paths]}``."""
        raise _abstract(self, "point_in_time_join")

    def describe(self) -> str:
        """Where work runs, for logs (never include secrets)."""
        raise _abstract(self, "describe")

    def close(self) -> None:
        """Release the cluster (or its connection); the engine may be used again afterwards."""


class Backends:
    """The registry of backend classes, filled through ``tether_add_backends``."""

    def __init__(self, on_miss=None) -> None:
        self._classes: dict[tuple[str, str], type] = {}
        self._policies: dict[str, Callable[..., None]] = {}
        self.references: dict[str, Callable[..., Any]] = {}  # record kind -> resolver of NAME@... refs
        self._on_miss = on_miss  # called once when a lookup misses (loads entry points)
        self._converter = None

    def add(self, cls: type) -> None:
        """Add a backend class; its ``kind`` and ``name`` must be set and unique."""
        if not isinstance(cls, type):
            raise PluginError(
                f"backends.add() takes a class, got {cls!r}; pass the class itself, not an instance"
            )
        kind, name = getattr(cls, "kind", None), getattr(cls, "name", None)
        if kind not in KINDS:
            raise PluginError(
                f"backend {cls.__module__}.{cls.__qualname__} has kind {kind!r}; "
                f"use one of {', '.join(KINDS)}"
            )
        if not isinstance(name, str) or not name:
            raise PluginError(f"backend {cls.__module__}.{cls.__qualname__} needs a class variable 'name'")
        if not attrs.has(cls):
            raise PluginError(f"backend {cls.__module__}.{cls.__qualname__} must be an attrs class")
        existing = self._classes.get((kind, name))
        if existing is not None and existing is not cls:
            raise PluginError(
                f"{kind} backend name '{name}' from {cls.__module__} is already used by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._classes[(kind, name)] = cls

    def add_policy(self, section: str, check: Callable[..., None]) -> None:
        """Declare the chain ``policy`` section ``section`` that a plugin reads, with
        ``check(value, *, where, host)`` raising ConfigError for a malformed one. A chain's
        policy may hold only declared sections, so a misspelled section is an error rather
        than a check silently skipped."""
        existing = self._policies.get(section)
        if existing is not None and existing is not check:
            raise PluginError(f"policy section '{section}' is already declared by {existing.__module__}")
        self._policies[section] = check

    def add_reference(self, kind: str, resolve: Callable[..., Any]) -> None:
        """Declare how references to records of ``kind`` that are not ids resolve (a model
        version's ``churn@champion``). ``resolve(store, ref, *, required)`` returns the
        record; when ``ref`` names nothing of that kind it returns ``None``, or, with
        ``required``, raises ``NotFoundError`` saying what exists. ``Workspace.resolve``
        calls it for ``kind`` and, without a kind, for any ``NAME@...`` that is no id."""
        existing = self.references.get(kind)
        if existing is not None and existing is not resolve:
            raise PluginError(f"references to '{kind}' records are already resolved by {existing.__module__}")
        self.references[kind] = resolve

    def check_policy(self, policy: dict[str, Any], *, where: str, host: Any) -> None:
        """Validate every section of a chain's ``policy`` (unknown sections included)."""
        reject_unknown_keys(policy, sorted(self._policies), where, what="policy section")
        for section, value in policy.items():
            self._policies[section](value, where=f"{where}.{section}", host=host)

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self._classes if k == kind)

    def __iter__(self) -> Iterator[type]:
        return iter(self._classes.values())

    def get(self, kind: str, name: str, *, where: str = "") -> type:
        """The class registered as ``name`` for ``kind``; a miss loads entry points once."""
        cls = self._classes.get((kind, name))
        if cls is None and self._on_miss is not None:
            on_miss, self._on_miss = self._on_miss, None
            on_miss()
            cls = self._classes.get((kind, name))
        if cls is None:
            available = self.names(kind)
            at = f"{where}: " if where else ""
            raise PluginError(
                f"{at}unknown {kind} plugin '{name}'{did_you_mean(name, available)} "
                f"(available: {', '.join(available) or 'none'})"
            )
        missing = cls.missing_requirements()
        if missing:
            raise PluginError(
                f"{kind} plugin '{name}' needs {', '.join(missing)}: {install_hint([cls.extra or name])}"
            )
        return cls

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, *, where: str = "",
               workspace: Any = None) -> Any:
        """Instantiate a backend from chain params; errors name the key path (``where``).

        ``workspace`` (a folder) is passed to backends with a ``workspace`` parameter that
        the params leave unset: storage and stores that keep their files there.
        """
        cls = self.get(kind, name, where=f"{where}.plugin" if where else "")
        params = dict(params or {})
        if workspace is not None and "workspace" in attrs.fields_dict(cls):
            params.setdefault("workspace", str(workspace))
        if self._converter is None:
            from .serde import make_strict_converter

            self._converter = make_strict_converter()
        try:
            return self._converter.structure(params, cls)
        except Exception as exc:  # cattrs raises ClassValidationError / ForbiddenExtraKeysError
            from .serde import structure_problems

            at = f"{where}.params" if where else "params"
            problems = structure_problems(exc)
            message = "; ".join(f"{at}.{path}: {problem}" if path else f"{at}: {problem}"
                                for path, problem in problems)
            if any(not path for path, _ in problems):
                allowed = ", ".join(a.name for a in attrs.fields(cls) if a.init) or "none"
                message += f" for {kind} plugin '{name}' (allowed parameters: {allowed})"
            raise ConfigError(message) from None
