"""Every backend kind is its base class's contract: chains run with minimal third-party
classes of every kind standing in for the built-in ones, and the built-in stages call
nothing else on them."""

from __future__ import annotations

import hashlib
import textwrap
import types
from typing import Any, ClassVar

import attrs
import pytest
import yaml
from tether import StageError, hookimpl
from tether.backends import (
    AlertSink,
    Deployer,
    DriftTest,
    Evaluator,
    Featurizer,
    LeakageCheck,
    MetadataStore,
    Monitor,
    OnlineStore,
    Registry,
    Rollback,
    Source,
    SplitStrategy,
    Storage,
    Window,
)
from tether.config import build_chain
from tether.errors import IntegrityError, NotFoundError
from tether.records import (
    Deployment,
    DriftResult,
    Evaluation,
    Finding,
    ModelVersion,
    MonitorReport,
    ObjectRef,
    new_id,
)
from tether.runner import run_chain

CALLS: list[str] = []  # which contract methods were called, in order
BUILT: dict[str, int] = {}  # backend name -> instances built


def _count(instance: Any) -> None:
    BUILT[instance.name] = BUILT.get(instance.name, 0) + 1


# --- storage and store: plain dicts -----------------------------------------------------


OBJECTS: dict[str, bytes] = {}
RECORDS: dict[str, tuple[Any, list[tuple[str, str]]]] = {}


@attrs.frozen(kw_only=True)
class DictStorage(Storage):
    name: ClassVar[str] = "dict"

    def put_bytes(self, data, *, suffix="", media_type="application/octet-stream"):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        key = f"objects/{digest[7:]}{suffix}"
        OBJECTS[key] = bytes(data)
        return ObjectRef(key=key, digest=digest, size=len(data), media_type=media_type)

    def read_bytes(self, ref):
        if ref.key not in OBJECTS:
            raise NotFoundError(f"no object {ref.key}")
        data = OBJECTS[ref.key]
        if "sha256:" + hashlib.sha256(data).hexdigest() != ref.digest:
            raise IntegrityError(f"object {ref.key} does not match its digest")
        return data

    def open(self, ref):
        import io

        return io.BytesIO(self.read_bytes(ref))

    def verify(self, ref):
        self.read_bytes(ref)

    def describe(self):
        return "a dict"


@attrs.frozen(kw_only=True)
class DictStore(MetadataStore):
    name: ClassVar[str] = "dict"

    def put(self, record, *, parents=(), run_id=None, replace=False):
        if record.id in RECORDS and not replace:
            old_record, old_parents = RECORDS[record.id]
            RECORDS[record.id] = (old_record, old_parents + [p for p in parents if p not in old_parents])
            return
        RECORDS.pop(record.id, None)
        RECORDS[record.id] = (record, list(parents))

    def put_versioned(self, build, *, kind, name, parents=(), run_id=None, unchanged=None):
        versions = [r for r, _ in RECORDS.values() if r.kind == kind and getattr(r, "name", None) == name]
        latest = max(versions, key=lambda r: r.version, default=None)
        if latest is not None and unchanged is not None and unchanged(latest):
            return latest
        record = build(latest.version + 1 if latest else 1)
        self.put(record, parents=parents, run_id=run_id)
        return record

    def get(self, record_id, kind=None):
        found = RECORDS.get(record_id)
        return found[0] if found and (kind is None or found[0].kind == kind) else None

    def find(self, kind, *, name=None, limit=None, prefix=None):
        out = [r for r, _ in reversed(RECORDS.values()) if r.kind == kind
               and (name is None or (getattr(r, "name", None) or getattr(r, "chain", None)) == name)
               and (prefix is None or r.id.startswith(prefix))]
        return out[:limit] if limit else out

    def lineage(self, record_id):
        up = [{"parent": p, "child": record_id, "relation": rel, "kind": None, "depth": 1}
              for p, rel in RECORDS.get(record_id, (None, []))[1]]
        down = [{"parent": record_id, "child": rid, "relation": rel, "kind": r.kind, "depth": 1}
                for rid, (r, parents) in RECORDS.items() for p, rel in parents if p == record_id]
        return {"upstream": up, "downstream": down}


# --- the lifecycle stages ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RowsSource(Source):
    name: ClassVar[str] = "rows"
    rows: int = 200

    def __attrs_post_init__(self):
        _count(self)

    def preflight(self, *, context):
        CALLS.append("source.preflight")

    def read(self, *, context):
        import numpy as np
        import pyarrow as pa

        CALLS.append("source.read")
        rng = np.random.default_rng(0)
        x = rng.normal(size=self.rows)
        return pa.table({"id": [f"r{i}" for i in range(self.rows)], "x": x, "y": (x > 0).astype(int)})

    def describe(self):
        return f"{self.rows} generated rows"


@attrs.frozen(kw_only=True)
class AlternatingSplit(SplitStrategy):
    name: ClassVar[str] = "alternating"

    def __attrs_post_init__(self):
        _count(self)

    def assign(self, frame, *, context):
        import pandas as pd

        CALLS.append("split.assign")
        return pd.Series(["train", "test"] * (len(frame) // 2) + ["train"] * (len(frame) % 2), index=frame.index)


@attrs.frozen(kw_only=True)
class RowCountCheck(LeakageCheck):
    name: ClassVar[str] = "row_count"
    default_action: ClassVar[str] = "warn"

    def check(self, data):
        CALLS.append("leakage.check")
        return [Finding(check=self.name, severity="warning", message=f"{len(data.frame)} rows checked")]


@attrs.frozen(kw_only=True)
class ScaleFeaturizer(Featurizer):
    name: ClassVar[str] = "scale"
    columns: tuple[str, ...] = ("x",)
    label: str = "y"

    def build(self):
        from sklearn.preprocessing import StandardScaler

        CALLS.append("featurizer.build")
        return StandardScaler()

    @property
    def input_columns(self):
        return list(self.columns)

    @property
    def label_column(self):
        return self.label


@attrs.frozen(kw_only=True)
class AccuracyEvaluator(Evaluator):
    name: ClassVar[str] = "accuracy"
    floor: float = 0.5

    def evaluate(self, model, features, *, context):
        CALLS.append("evaluator.evaluate")
        frame = context.workspace.read_frame(features.matrices["test"])
        estimator = context.workspace.load_model(model)
        accuracy = float((estimator.predict(frame[list(features.feature_names)]) == frame[features.label]).mean())
        return Evaluation(id=new_id("eval"), model_id=model.id, feature_set_id=features.id, split="test",
                          evaluator=self.name, metrics={"accuracy": accuracy}, passed=accuracy >= self.floor)


@attrs.frozen(kw_only=True)
class ListRegistry(Registry):
    name: ClassVar[str] = "list"
    model_name: str = "toy"

    def register(self, model, evaluation, *, context):
        CALLS.append("registry.register")
        if evaluation is not None and not evaluation.passed:
            raise StageError("not registering a model that failed")
        return context.store.put_versioned(
            lambda n: ModelVersion(id=f"mv-{self.model_name}-{n}", name=self.model_name, version=n,
                                   model_id=model.id, evaluation_id=evaluation.id if evaluation else None),
            kind="model_version", name=self.model_name)


@attrs.frozen(kw_only=True)
class NoteDeployer(Deployer):
    name: ClassVar[str] = "note"

    def deploy(self, model_version, snapshot, *, context):
        CALLS.append("deployer.deploy")
        return Deployment(id=new_id("deploy"), model_version_id=model_version.id, target="notes",
                          status="completed", details={"snapshot": snapshot.id if snapshot else None})


@attrs.frozen(kw_only=True)
class RowCountMonitor(Monitor):
    name: ClassVar[str] = "row_count"

    def run(self, *, reference, current, deployment, context):
        CALLS.append("monitor.run")
        ratio = current.num_rows / reference.num_rows
        return MonitorReport(id=new_id("mon"), reference_id=reference.id, current_id=current.id,
                             verdict="ok" if 0.5 < ratio < 2 else "warning", details={"ratio": ratio})


# --- the drift monitor's pieces ------------------------------------------------------


@attrs.frozen(kw_only=True)
class AlwaysDrifted(DriftTest):
    name: ClassVar[str] = "always"
    threshold: float = 0.5

    def run(self, column, ref, cur):
        CALLS.append("drift.run")
        return DriftResult(column=column, test=self.name, test_version=self.version, statistic=1.0,
                           threshold=self.threshold, threshold_type="distance", drifted=True,
                           n_reference=ref.count, n_current=cur.count)


@attrs.frozen(kw_only=True)
class ShiftedWindow(Window):
    name: ClassVar[str] = "shifted"
    rows: int = 100

    def batches(self, *, context):
        import numpy as np
        import pyarrow as pa

        CALLS.append("window.batches")
        x = np.random.default_rng(1).normal(loc=3.0, size=self.rows)
        yield pa.record_batch({"id": [f"c{i}" for i in range(self.rows)], "x": x, "y": (x > 3).astype(int)})

    def describe(self):
        return "shifted rows"


SENT: list[dict] = []
ROLLED_BACK: list[str] = []


@attrs.frozen(kw_only=True)
class ListSink(AlertSink):
    name: ClassVar[str] = "list"

    def send(self, alerts, *, context, report_id):
        CALLS.append("alert_sink.send")
        SENT.extend(alerts)


@attrs.frozen(kw_only=True)
class NoteRollback(Rollback):
    name: ClassVar[str] = "note"

    def rollback(self, deployment, *, reason, context):
        CALLS.append("rollback.rollback")
        ROLLED_BACK.append(deployment.id)
        return None


@pytest.fixture
def plugin(host):
    module = types.ModuleType("toy_backends")

    @hookimpl
    def tether_add_backends(backends):
        for cls in (DictStorage, DictStore, RowsSource, AlternatingSplit, RowCountCheck, ScaleFeaturizer,
                    AccuracyEvaluator, ListRegistry, NoteDeployer, RowCountMonitor, AlwaysDrifted, ShiftedWindow,
                    ListSink, NoteRollback):
            backends.add(cls)

    module.tether_add_backends = tether_add_backends
    host.register(module, name="toy_backends")
    for registry in (CALLS, SENT, ROLLED_BACK):
        registry.clear()
    BUILT.clear()
    OBJECTS.clear()
    RECORDS.clear()
    return module


def _fit(features, context):
    from sklearn.linear_model import LogisticRegression

    frame = context.workspace.read_frame(features.matrices["train"])
    return LogisticRegression().fit(frame[list(features.feature_names)], frame[features.label])


CHAIN = textwrap.dedent("""\
    version: 1
    name: toy
    storage: {plugin: dict}
    store: {plugin: dict}
    policy:
      leakage: {row_count: warn}
    stages:
      - {stage: snapshot, id: train-data, plugin: rows, params: {rows: 200}}
      - {stage: split, plugin: alternating}
      - {stage: featurize, plugin: scale}
      - {step: "test_contracts:_fit"}
      - {stage: evaluate, plugin: accuracy}
      - {stage: register, plugin: list}
      - {stage: snapshot, id: later-data, plugin: rows, params: {rows: 150}}
      - {stage: deploy, plugin: note, inputs: {snapshot: later-data}}
      - {stage: monitor, plugin: row_count, inputs: {reference: train-data, current: later-data}}
      - stage: monitor
        id: drift
        plugin: drift
        inputs: {reference: train-data}
        params:
          columns: [x]
          drift: {tests: {"*": always}}
          windows: {current: {plugin: shifted}}
          health: {definitions: false}
          alerts:
            rules: [{name: any-drift, signal: drift.share, above: 0.5, severity: critical, action: roll_back}]
            sinks: [{plugin: list}]
            rollback: {plugin: note}
    """)


def test_a_chain_of_third_party_backends_of_every_kind_runs(plugin, host, tmp_path):
    chain = build_chain(yaml.safe_load(CHAIN), host, text=CHAIN, base_dir=tmp_path)
    run, outputs = run_chain(chain, host)
    assert run.status == "succeeded", run.error
    assert outputs["train-data"].num_rows == 200 and outputs["later-data"].num_rows == 150
    assert outputs["split"].sizes["train"] == 100 and outputs["split"].sizes["test"] == 100
    assert [f.check for f in outputs["split"].findings] == ["row_count"]
    assert outputs["featurize"].feature_names == ("x",)
    assert outputs["evaluate"].metrics["accuracy"] > 0.9
    assert outputs["register"].id == "mv-toy-1"
    assert outputs["deploy"].details["snapshot"] == outputs["later-data"].id
    assert outputs["monitor"].details["ratio"] == pytest.approx(0.75)
    drift = outputs["drift"]
    assert drift.verdict == "critical" and [r.test for r in drift.results] == ["always"]
    assert [a["rule"] for a in SENT] == ["any-drift"]
    assert ROLLED_BACK == [outputs["deploy"].id]
    for method in ("source.read", "split.assign", "leakage.check", "featurizer.build", "evaluator.evaluate",
                   "registry.register", "deployer.deploy", "monitor.run", "drift.run", "window.batches",
                   "alert_sink.send", "rollback.rollback"):
        assert method in CALLS, method
    # every record and object went through the third-party store and storage
    assert {r.kind for r, _ in RECORDS.values()} >= {"run", "snapshot", "split", "features", "model", "evaluation",
                                                      "model_version", "deployment", "monitor_report"}
    assert any(key.endswith(".parquet") for key in OBJECTS)


def test_each_stage_backend_is_built_and_preflighted_once(plugin, host, tmp_path):
    chain = build_chain(yaml.safe_load(CHAIN), host, text=CHAIN, base_dir=tmp_path)
    run, _ = run_chain(chain, host)
    assert run.status == "succeeded", run.error
    assert BUILT == {"rows": 2, "alternating": 1}  # two snapshot stages, one split stage
    assert CALLS.count("source.preflight") == 2
    assert CALLS.count("source.read") == 2


@attrs.frozen(kw_only=True)
class DictOnlineStore(OnlineStore):
    name: ClassVar[str] = "dict"
    values: dict = attrs.field(factory=dict)
    views: dict = attrs.field(factory=dict)

    def check(self):
        CALLS.append("online_store.check")

    def write(self, view, rows, *, entity, features):
        changed = 0
        for entity_id, feature, value, ts in rows:
            old = self.values.get((view, entity_id, feature))
            if old is None or old[1] < ts:
                self.values[(view, entity_id, feature)] = (value, ts)
                changed += 1
        known = self.views.setdefault(view, {"entity": entity, "features": []})
        known["features"] = sorted(set(known["features"]) | set(features))
        return changed

    def read(self, view, entity_ids, features):
        return {(e, f): self.values[(view, e, f)] for e in entity_ids for f in features
                if (view, e, f) in self.values}

    def view_info(self, view):
        return self.views.get(view)

    def drop_view(self, view):
        self.views.pop(view, None)

    def describe(self):
        return "a dict"


def test_online_lookups_work_with_a_third_party_online_store():
    import pandas as pd
    from tether.plugins.online_store.lookups import get_online_features, materialize

    store = DictOnlineStore()
    frame = pd.DataFrame({"customer": [1, 1, 2], "ts": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02"]),
                          "spend": [10.0, 30.0, 5.0]})
    counts = materialize(store, frame, view="c", entity="customer", feature_time="ts")
    assert counts == {"written": 2, "unchanged": 0, "entities": 2}
    assert materialize(store, frame, view="c", entity="customer", feature_time="ts")["written"] == 0
    got = get_online_features(store, [2, 1, 3], view="c", now="2026-01-05")
    assert got["spend"].tolist()[:2] == [5.0, 30.0] and pd.isna(got["spend"].tolist()[2])
    assert "online_store.check" in CALLS
