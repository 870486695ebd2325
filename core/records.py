"""The records that flow between lifecycle stages.

Every record is a frozen attrs class with a ``kind`` and a ``schema_version``; they are
serialized only through :mod:`tether.serde`, never with ``asdict`` or ``Cls(**row)``.
Records refer to each other by id; the metadata store keeps them and the lineage edges
between them. Adding a field with a default is backwards compatible; anything else
bumps ``schema_version``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import attrs

#: kind -> record class, filled by :func:`record`.
RECORD_KINDS: dict[str, type] = {}


def record(kind: str, schema_version: int = 1):
    """Class decorator: make a frozen, keyword-only record registered under ``kind``."""

    def wrap(cls):
        cls.kind = kind
        cls.schema_version = schema_version
        cls = attrs.frozen(kw_only=True)(cls)
        RECORD_KINDS[kind] = cls
        return cls

    return wrap


def object_refs(value: Any) -> list[ObjectRef]:
    """Every :class:`ObjectRef` a record (or any nested value) holds, in field order."""
    out: list[ObjectRef] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, ObjectRef):
            out.append(item)
        elif attrs.has(type(item)):
            pending.extend(getattr(item, f.name) for f in reversed(attrs.fields(type(item))))
        elif isinstance(item, dict):
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            pending.extend(reversed(item))
    return out


def new_id(prefix: str) -> str:
    """A fresh random id such as ``run-3f2a9c0d1b4e5f60``."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- Values embedded in records ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class ObjectRef:
    """An immutable object in a storage backend, with the digest that proves it unchanged."""

    key: str
    digest: str  # "blake3:<hex>"
    size: int
    media_type: str = "application/octet-stream"
    signature: str | None = None  # HMAC of the digest, for pickled artifacts when a signing key is set


@attrs.frozen(kw_only=True)
class Finding:
    """One observation from a check: leakage, validation, health, a failed gate.

    ``severity`` is ``info``, ``warning`` or ``error``; a chain's policy decides whether an
    ``error`` finding fails its stage.
    """

    check: str
    severity: str
    message: str
    evidence: dict[str, Any] = attrs.field(factory=dict)
    fix: str = ""


@attrs.frozen(kw_only=True)
class ColumnInfo:
    name: str
    type: str  # Arrow type string, e.g. "int64", "timestamp[us, tz=UTC]"
    nullable: bool = True


@attrs.frozen(kw_only=True)
class ColumnSummary:
    """Computed per-column facts shown on a dataset card."""

    name: str
    type: str
    missing_share: float
    distinct: int | None = None
    min: Any = None
    max: Any = None
    mean: float | None = None
    top: tuple[tuple[str, int], ...] = ()
    null_count: int = 0
    fingerprint: str = ""  # this column's values alone (see docs/snapshots.md)


@attrs.frozen(kw_only=True)
class DatasetCard:
    """What a snapshot is: declared fields come from the user, computed ones from the data."""

    # declared
    description: str = ""
    version: str = ""
    owner: str = ""
    source_systems: tuple[str, ...] = ()
    selection: str = ""
    filters: tuple[str, ...] = ()
    exclusions: tuple[str, ...] = ()
    label_definition: str = ""
    preprocessing: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    synthetic: bool = False
    # computed
    num_rows: int = 0
    num_columns: int = 0
    time_range: tuple[dt.datetime, dt.datetime] | None = None
    columns: tuple[ColumnSummary, ...] = ()
    name: str = ""
    source: str = ""  # the source as described by its backend (never secrets)
    time_column: str | None = None
    key_columns: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class StageRun:
    """One stage of a run: what ran, what it produced, how it ended."""

    id: str
    stage: str  # lifecycle stage or "step"
    plugin: str = ""
    status: str = "succeeded"  # succeeded | failed | reused
    output_id: str | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error: str | None = None
    #: the digests its reuse is decided on: ``config``, ``inputs``, ``code`` (see tether.reuse)
    key: dict[str, str] = attrs.field(factory=dict)
    reason: str = ""  # why it ran or was reused: "new", "rerun: params changed", "unchanged"...


# --- Records ----------------------------------------------------------------------------


@record("snapshot")
class DatasetSnapshot:
    """An immutable, content-addressed version of a dataset.

    ``fingerprint`` is computed from the data (schema and values in order), so the same
    data always has the same fingerprint, and ``id`` is derived from it; ``objects`` are
    the Parquet parts holding it, in row order. ``version`` numbers the distinct contents
    snapshotted under ``name`` (identical data is stored once and keeps its first name and
    version; see ``docs/snapshots.md``).
    """

    id: str
    name: str
    fingerprint: str
    num_rows: int
    columns: tuple[ColumnInfo, ...]
    objects: tuple[ObjectRef, ...]
    source: str = ""
    time_column: str | None = None
    key_columns: tuple[str, ...] = ()
    card: DatasetCard = attrs.field(factory=DatasetCard)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    version: int | None = None  # 1, 2, ... per name; each distinct content gets one version
    object_rows: tuple[int, ...] = ()  # rows in each of ``objects``
    size_bytes: int = 0  # stored bytes of all objects

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@record("split")
class SplitManifest:
    """Which rows of a snapshot are in which split, and how that was decided.

    ``assignment`` is a Parquet object with one row per snapshot row: ``row`` (position),
    ``row_fingerprint`` and ``split`` (``train``, ``validation``, ``test`` or ``excluded``).
    ``findings`` are the leakage checks' findings; ``summary`` holds per-split rows, time
    ranges, class balance and entity counts.
    """

    id: str
    snapshot_id: str
    strategy: str
    params: dict[str, Any]
    sizes: dict[str, int]
    assignment: ObjectRef
    seed: int | None = None
    findings: tuple[Finding, ...] = ()
    summary: dict[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    #: how ``row_fingerprint`` was computed (see ``tether.plugins.rows.row_fingerprints``)
    fingerprint_method: str = ""
    #: declared columns by role: ``entity``, ``time``, ``label``
    columns: dict[str, str] = attrs.field(factory=dict)
    label_definition: str = ""
    #: the ``policy.leakage`` mapping the findings were judged by
    policy: dict[str, Any] = attrs.field(factory=dict)


@record("features")
class FeatureSet:
    """Features computed from a snapshot with a transform fitted on the training split only.

    ``transform`` is the fitted transform artifact that batch scoring and serving load;
    ``matrices`` maps split name to a Parquet object of transformed features (+ label).
    ``findings`` are the validation findings of the inputs against their definitions.
    """

    id: str
    snapshot_id: str
    split_id: str
    featurizer: str
    params: dict[str, Any]
    transform: ObjectRef
    feature_names: tuple[str, ...]
    matrices: dict[str, ObjectRef]
    label: str | None = None
    findings: tuple[Finding, ...] = ()
    created_at: dt.datetime = attrs.field(factory=utcnow)
    #: the transform's input columns, in the order ``transform()`` expects them
    input_columns: tuple[str, ...] = ()
    #: ids of the feature definition versions the inputs were validated against
    definition_ids: tuple[str, ...] = ()
    #: the fitted transform's class (``module.Class``); ``user`` transforms are wrapped
    transform_class: str = ""

    @staticmethod
    def id_for(*, snapshot_id: str, split_id: str, transform: ObjectRef, matrices: dict[str, ObjectRef]) -> str:
        """A feature set's id is derived from what it is made of and holds, so the same
        transform fitted for another split is another feature set, and a record re-pointed
        at other bytes is detected before its transform is unpickled."""
        import hashlib

        parts = [snapshot_id, split_id, transform.digest, *(f"{k}={v.digest}" for k, v in sorted(matrices.items()))]
        return "feat-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@record("model")
class TrainedModel:
    """A trained model artifact produced by a user's training step."""

    id: str
    artifact: ObjectRef
    framework: str
    estimator: str
    feature_set_id: str | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    step: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)

    @staticmethod
    def id_for(artifact: ObjectRef) -> str:
        """A model's id is derived from its artifact's digest, so a record pointing at other
        bytes than the ones it was made for is detected (``verify`` and every load)."""
        return "model-" + artifact.digest.split(":")[1][:16]


@attrs.frozen(kw_only=True)
class BaselineScore:
    """A baseline scored on the same rows as the model: ``kind`` is ``dummy`` (``reference``
    names the strategy), ``rule`` (``module:function``) or ``model_version`` (the id re-scored)."""

    name: str
    kind: str
    reference: str = ""
    metrics: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SliceScore:
    """Metrics on one segment of a slice (a raw snapshot column's value, a numeric bin or a
    predicate), with bootstrap ``intervals`` (metric -> ``(low, high)``); ``low_support``
    when fewer rows than the evaluation's minimum support fell in it."""

    slice: str
    segment: str
    kind: str  # category | bin | predicate
    support: int
    metrics: dict[str, float] = attrs.field(factory=dict)
    intervals: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    low_support: bool = False


@attrs.frozen(kw_only=True)
class GateOutcome:
    """One gate rule and how the model fared against it (``value`` against ``bound``)."""

    rule: str  # "min.roc_auc", "beats.dummy", "max_regression.latest.roc_auc", "slice_gates[0]"
    passed: bool
    message: str
    metric: str = ""
    value: float | None = None
    bound: float | None = None
    segment: str = ""  # "region=south" for a slice rule


@record("evaluation")
class Evaluation:
    """Metrics of a model on one split, compared with baselines scored on the same rows,
    per slice with confidence intervals, with the gate outcomes (see docs/evaluation.md).

    Records written before the task-aware evaluators have only the first fields; every
    later field has a default, so they still load."""

    id: str
    model_id: str
    feature_set_id: str
    split: str
    evaluator: str
    metrics: dict[str, float]
    passed: bool
    baseline_id: str | None = None
    baseline_metrics: dict[str, float] = attrs.field(factory=dict)
    findings: tuple[Finding, ...] = ()
    created_at: dt.datetime = attrs.field(factory=utcnow)
    #: what it was gated on: metric -> {"min": x, "max": y, "max_regression": z}
    gates: dict[str, dict[str, float]] = attrs.field(factory=dict)
    task: str = ""  # binary | multiclass | regression | ranking
    label: str = ""
    source: str = ""  # "stage", "file:<name>" or "python"
    snapshot_id: str | None = None
    #: binary: {"value", "method" (fixed | maximize), "metric", "split"}
    threshold: dict[str, Any] = attrs.field(factory=dict)
    #: metric -> (low, high): bootstrap interval of the whole evaluation's metrics
    intervals: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    classes: tuple[str, ...] = ()
    per_class: tuple[dict[str, Any], ...] = ()  # {"class", "precision", "recall", "f1", "support"}
    confusion: dict[str, Any] = attrs.field(factory=dict)  # {"labels": [...], "matrix": [[...]]}
    curves: dict[str, Any] = attrs.field(factory=dict)  # {"roc": {...}, "pr": {...}}
    calibration: dict[str, Any] = attrs.field(factory=dict)
    sweep: tuple[dict[str, float], ...] = ()  # binary: metrics at each threshold
    residuals: dict[str, Any] = attrs.field(factory=dict)  # regression: quantiles, bias
    baselines: tuple[BaselineScore, ...] = ()
    slices: tuple[SliceScore, ...] = ()
    bootstrap: dict[str, Any] = attrs.field(factory=dict)  # resamples, confidence, seed, min_support
    examples: dict[str, Any] = attrs.field(factory=dict)  # highest-loss and correct rows
    outcomes: tuple[GateOutcome, ...] = ()


@record("model_version")
class ModelVersion:
    """A registered version of a named model, with the evidence it was registered on and
    its model card. A version is immutable once written: its status and aliases change
    through append-only records of ``tether.plugins.registry``, so ``status`` is the status
    it was registered with (read the current one with ``registry.state.status_of``;
    ``registered``, written by earlier releases, reads as ``experimental``). Approval state
    and deployment date are derived from those records too, never stored here.
    """

    id: str
    name: str
    version: int
    model_id: str
    evaluation_id: str | None = None
    feature_set_id: str | None = None
    snapshot_id: str | None = None  # the training data version
    status: str = "experimental"
    metrics: dict[str, float] = attrs.field(factory=dict)
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)
    # model card (declared by whoever registers it; the code version comes from the run)
    code_version: str = ""  # the git commit of the run that registered it
    run_id: str | None = None
    intended_use: str = ""
    limitations: tuple[str, ...] = ()
    owner: str = ""
    license: str = ""
    registered_by: str = ""  # who registered it (``tether.audit.actor()``)


@record("audit_entry")
class AuditEntry:
    """One entry of the workspace's append-only audit log (see :mod:`tether.audit`).

    Entries are numbered 1, 2, 3... without gaps (``version``, under ``name`` "audit"), and
    each commits to the one before: ``hash`` is the SHA-256 of the canonical JSON of the
    entry's fields and ``prev_hash``, so editing, reordering or deleting one is detected.
    """

    id: str
    name: str  # always "audit": the log the entry is numbered in
    version: int  # its position in the log, 1-based
    action: str  # e.g. "model.registered", "model.transition", "deployment.started"
    subject: str  # the record it is about, e.g. "mv-churn-3"
    actor: str
    details: dict[str, Any] = attrs.field(factory=dict)
    prev_hash: str = ""
    hash: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


@record("deployment")
class Deployment:
    """A model version put to work in an environment by a rollout strategy: a batch scoring
    output, or a serving rollout (shadow, canary, blue-green) the router reads.

    The stored record is immutable and holds the rollout as it started; every later
    decision (a canary step, a promotion, a rollback) is an append-only
    ``deployment_event`` record, and ``tether.plugins.rollout.state.current`` folds them in
    (``state``, ``weight`` and ``step`` as they stand now). ``weight`` is the percentage of
    traffic sent to ``model_version_id``; the rest goes to ``stable_version_id``. ``target``
    and ``status`` are the strategy and the starting state under their earlier names.
    """

    id: str
    model_version_id: str
    target: str
    status: str
    outputs: tuple[ObjectRef, ...] = ()
    location: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    environment: str = ""
    strategy: str = ""  # batch | shadow | canary | blue_green | rollback ("" in early records: see target)
    state: str = ""  # pending | active | promoted | aborted | rolled_back | completed ("" early: see status)
    steps: tuple[float, ...] = ()  # canary weights in percent, e.g. (5, 25, 50, 100)
    step: int = 0  # index into ``steps`` of the current weight
    weight: float = 0.0  # percent of traffic to ``model_version_id``
    stable_version_id: str | None = None  # the version serving the rest (blue, stable)
    rollback_target: str | None = None  # the version a rollback re-activates
    sticky_key: str | None = None  # the request field a canary hashes to keep an entity on one version
    fallback: dict[str, Any] = attrs.field(factory=dict)  # mode: previous | rule | recommend_only | none
    analysis: dict[str, Any] = attrs.field(factory=dict)  # canary analysis: interval, min_requests, signals
    bundle_id: str | None = None  # the verified bundle the deployment serves or scored with
    actor: str = ""  # who started it (``tether.audit.actor()``)


@attrs.frozen(kw_only=True)
class DriftResult:
    """The outcome of one statistical test, in the schema every drift test shares.

    ``threshold_type`` is ``p_value`` (drift when ``p_value < threshold``), ``distance``
    (drift when ``statistic >= threshold``) or ``std`` (drift when the statistic, in
    standard deviations, is ``>= threshold``). ``method`` says how the statistic was
    computed (e.g. ``ks_2samp asymptotic``); ``test``/``test_version`` name the plugin.
    """

    column: str
    test: str
    test_version: str
    statistic: float
    threshold: float
    threshold_type: str
    drifted: bool
    n_reference: int
    n_current: int
    p_value: float | None = None
    details: dict[str, Any] = attrs.field(factory=dict)
    method: str = ""


@record("monitor_report")
class MonitorReport:
    """What monitoring found comparing a current window with a reference."""

    id: str
    reference_id: str
    current_id: str
    verdict: str  # ok | warning | critical
    results: tuple[DriftResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    details: dict[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    profile_id: str | None = None  # the stored reference profile the window was compared with
    alerts: tuple[dict[str, Any], ...] = ()  # fired alerts: rule, severity, action, message, suppressed
    report: ObjectRef | None = None  # the HTML report, when one was written


def _code_fields(code: Any) -> dict[str, Any]:
    """A run's ``code`` mapping with ``git_dirty`` a boolean: records written before it was
    one hold the strings ``"true"``/``"false"``, which read as the boolean they meant."""
    code = dict(code or {})
    dirty = code.get("git_dirty")
    if isinstance(dirty, str):
        code["git_dirty"] = dirty.strip().lower() == "true"
    return code


@record("run")
class Run:
    """One execution of a chain (or a ``tether.start_run`` block), with what it used and
    recorded: data, code, environment, params, seeds, metrics, artifacts, notes and tags
    (see docs/tracking.md)."""

    id: str
    chain: str  # the chain name, or the run name given to ``tether.start_run``
    chain_digest: str
    status: str  # running | succeeded | failed | crashed
    config: str = ""  # the chain text as written: ${VAR} placeholders, never their values
    stages: tuple[StageRun, ...] = ()
    #: ``tether``, ``python``, ``git_commit``, ``git_branch``, ``git_dirty`` (a boolean) and,
    #: when dirty, ``git_diff_sha256`` (of ``git diff HEAD``)
    code: dict[str, Any] = attrs.field(factory=dict, converter=_code_fields)
    error: str | None = None
    started_at: dt.datetime = attrs.field(factory=utcnow)
    ended_at: dt.datetime | None = None
    #: the process running it, so a run whose process died can be told from one still going
    host: str = ""
    pid: int | None = None
    process_started: float | None = None  # the process's start time (Linux), against pid reuse
    #: stage id -> the data it produced: ``{"kind": "snapshot", "id", "fingerprint"}`` or
    #: ``{"kind": "split", "id", "snapshot_id", "seed"}``
    data: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: ``python``, ``platform``, ``packages`` (name -> installed version)
    environment: dict[str, Any] = attrs.field(factory=dict)
    params: dict[str, Any] = attrs.field(factory=dict)  # flattened key paths: ``train.C``
    seeds: dict[str, int] = attrs.field(factory=dict)  # ``split.seed``, ``train.random_state``
    metrics: dict[str, float] = attrs.field(factory=dict)  # the latest value of each metric
    artifacts: dict[str, ObjectRef] = attrs.field(factory=dict)  # name -> content-addressed object
    notes: dict[str, str] = attrs.field(factory=dict)  # ``hypothesis``, ``decision``
    tags: dict[str, str] = attrs.field(factory=dict)
    chain_path: str = ""  # the chain file, which relative paths in ``config`` are resolved against
    tracker_errors: tuple[str, ...] = ()  # "<tracker>: <method>: <error>" of trackers dropped mid-run
