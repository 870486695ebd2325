"""Monitoring: stored profiles, chunked windows, health, model behaviour, the chain and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tether.context import RunContext
from tether.plugins.monitoring.compare import compare
from tether.plugins.monitoring.health import health
from tether.plugins.monitoring.model import estimate_performance
from tether.plugins.monitoring.monitor import DriftMonitor
from tether.plugins.monitoring.params import HealthParams, ModelParams, WindowParams
from tether.plugins.monitoring.profile_store import find_profile, load_profile, save_profile
from tether.plugins.monitoring.profiles import profile_batches, profile_windows
from tether.plugins.monitoring.windows import file_batches

from tests.conftest import REPO

UTC = dt.timezone.utc


def table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def data(n: int, seed: int, *, shift: float = 0.0, start="2026-01-01", days=7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, days * 24 * 3600, n), unit="s"),
        "price": rng.normal(50 + shift, 10, n),
        "qty": rng.poisson(3, n),
        "kind": rng.choice(["a", "b", "c"], n),
    })


# --- profiles ---------------------------------------------------------------------------------


def test_profile_is_stored_versioned_and_reloaded_identically(workspace):
    frame = data(5_000, 1)
    frame.loc[::50, "price"] = np.nan
    prof = profile_batches([table(frame)], time_column="ts")
    rec1 = save_profile(workspace, prof, name="orders", source="test")
    rec2 = save_profile(workspace, prof, name="orders", source="test")
    assert (rec1.version, rec2.version) == (1, 2)
    assert find_profile(workspace, "orders").id == rec2.id and find_profile(workspace, "orders@1").id == rec1.id
    back = load_profile(workspace, rec1)
    assert back.rows == 5_000 and back.time_min == prof.time_min and back.sample.num_rows == 5_000
    for name, sk in prof.columns.items():
        got = back.columns[name]
        assert got.missing == sk.missing and got.count == sk.count
        if sk.kind == "numeric":
            assert np.array_equal(got.values, sk.values) and np.array_equal(got.counts, sk.counts)
        else:
            assert got.counts == sk.counts
    assert {c.name: c.missing for c in rec1.columns}["price"] == 100
    workspace.store.get(rec1.id, kind="profile")  # a record in the store


def test_profile_lineage_links_the_snapshot(workspace, context):
    from tether.plugins.snapshots.create import take_snapshot

    snap = take_snapshot(table(data(1_000, 2)), name="orders", source="test", workspace=workspace, time_column="ts")
    workspace.store.put(snap)
    monitor = DriftMonitor()
    rec, prof = monitor.reference_for_snapshot(snap, context)
    again, _ = monitor.reference_for_snapshot(snap, context)
    assert again.id == rec.id and rec.snapshot_id == snap.id  # profiled once, reused
    assert "ts" not in prof.columns and prof.time_max is not None
    upstream = workspace.store.lineage(rec.id)["upstream"]
    assert any(e["parent"] == snap.id for e in upstream)


# --- chunked windows --------------------------------------------------------------------------


def test_chunked_parquet_window_gives_the_same_results_with_bounded_memory(tmp_path, host):
    ref = data(20_000, 3)
    cur = data(400_000, 4, shift=2.0)
    path = tmp_path / "cur.parquet"
    pq.write_table(table(cur), path, row_group_size=50_000)
    r = profile_batches([table(ref)], time_column="ts")
    whole = profile_batches([table(cur)], time_column="ts")
    tracemalloc.start()
    chunked = profile_batches(file_batches(path, batch_rows=20_000), time_column="ts", sketch_size=20_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    a, _ = compare(r, whole, backends=host.backends)
    b, _ = compare(r, chunked, backends=host.backends)
    assert chunked.rows == 400_000 and chunked.columns["price"].compressed
    assert [x.drifted for x in a] == [x.drifted for x in b]
    for x, y in zip(a, b):
        assert y.statistic == pytest.approx(x.statistic, rel=0.02, abs=1e-3)
    # the whole window is 400k x 4 columns (~13 MB as float64); chunks + sketches stay far below
    assert peak < 8 * 2**20, peak


def test_daily_windows_show_the_trend(host):
    ref = data(7_000, 5, start="2026-01-01", days=7)
    days = [data(2_000, 10 + d, shift=(0.0 if d < 3 else 6.0 * (d - 2)), start=f"2026-02-0{d + 1}", days=1)
            for d in range(5)]
    cur = pd.concat(days, ignore_index=True).sample(frac=1, random_state=0)  # unordered rows
    r = profile_batches([table(ref)], time_column="ts")
    windows = profile_windows(table(cur).to_batches(max_chunksize=1_500), every="daily", time_column="ts")
    assert [w.label for w in windows] == [f"2026-02-0{d + 1}" for d in range(5)]
    assert [w.rows for w in windows] == [2_000] * 5
    monitor = DriftMonitor(windows=WindowParams(every="daily"), time_column="ts")
    report = monitor.check(reference=r, current_batches=table(cur).to_batches(max_chunksize=1_500),
                           context=RunContext(host=host, workspace=None), reference_id="r", current_id="c",
                           send=False, launch=False)
    trend = report.details["windows"]
    assert [t["drifted"] for t in trend] == [[], [], [], ["price"], ["price"]]
    assert trend[4]["statistics"]["price"] > trend[3]["statistics"]["price"] > trend[0]["statistics"]["price"]
    weekly = profile_windows([table(cur)], every="weekly", time_column="ts")
    assert sum(w.rows for w in weekly) == 10_000 and weekly[0].label.startswith("2026-02-02") is False


# --- data health ------------------------------------------------------------------------------


def test_health_checks_find_each_problem():
    ref = data(10_000, 6)
    cur = data(3_000, 7)
    cur["price"] = cur["price"].where(np.arange(3_000) % 4 != 0)  # 25% missing
    cur.loc[:99, "price"] = 500.0  # out of the reference range
    cur["kind"] = np.where(np.arange(3_000) % 10 == 0, "zz", cur["kind"])  # unseen category
    cur["qty"] = cur["qty"].astype("float64")  # retyped, still numeric
    cur["extra"] = 1
    cur["ids"] = [f"u{i}" for i in range(3_000)]
    ref["ids"] = [f"u{i % 20}" for i in range(10_000)]
    ref["gone"] = 1.0
    r = profile_batches([table(ref)], time_column="ts")
    c = profile_batches([table(cur)], time_column="ts")
    as_of = c.time_max + dt.timedelta(hours=30)
    config = HealthParams(max_lag_hours=24, as_of=as_of,
                          expect={"qty": {"min": 0, "max": 5}, "kind": {"allowed": ["a", "b", "c"]}})
    findings, metrics = health(r, c, config)
    checks = {f.check for f in findings}
    assert checks >= {"freshness", "volume.change", "missing.change", "validity.range", "categories.unseen",
                      "schema.added", "schema.removed", "schema.retyped", "categories.explosion", "validity.allowed"}
    assert metrics["freshness_lag_hours"] == pytest.approx(30)
    assert metrics["volume_ratio"] == pytest.approx(0.3)
    assert metrics["columns"]["price"]["missing_current"] == pytest.approx(0.25, abs=0.01)
    by = {(f.check, f.evidence.get("column")): f for f in findings}
    assert by[("validity.range", "price")].severity == "warning"  # outside the reference range
    assert by[("validity.range", "qty")].severity == "error"  # outside the declared range
    clean = profile_batches([table(data(10_000, 6))], time_column="ts")
    ok, _ = health(clean, profile_batches([table(data(10_000, 8))], time_column="ts"), HealthParams())
    assert ok == []


# --- model behaviour ---------------------------------------------------------------------------


def calibrated(n: int, seed: int, a: float = 2.0):
    rng = np.random.default_rng(seed)
    score = 1 / (1 + np.exp(-rng.normal(0, a, n)))
    label = (rng.random(n) < score).astype(int)
    return score, label


def test_cbpe_estimates_realised_performance_for_calibrated_scores():
    from sklearn import metrics as m
    from tether.plugins.monitoring.sketches import NumericSketch

    score, label = calibrated(100_000, 1)
    sk = NumericSketch()
    sk.add(score)
    est = estimate_performance(sk, 0.5)
    pred = (score >= 0.5).astype(int)
    assert est["accuracy"] == pytest.approx(m.accuracy_score(label, pred), abs=0.01)
    assert est["roc_auc"] == pytest.approx(m.roc_auc_score(label, score), abs=0.01)
    assert est["precision"] == pytest.approx(m.precision_score(label, pred), abs=0.01)
    assert est["recall"] == pytest.approx(m.recall_score(label, pred), abs=0.01)
    # a shifted population (more confident scores) changes the estimate in the right direction
    sk2 = NumericSketch()
    sk2.add(calibrated(100_000, 2, a=4.0)[0])
    assert estimate_performance(sk2)["accuracy"] > est["accuracy"] + 0.05


def test_model_behaviour_with_delayed_labels_joined_by_request_id_and_by_entity_time(tmp_path, host):
    n = 6_000
    score, label = calibrated(n, 3)
    rng = np.random.default_rng(4)
    preds = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "customer": rng.integers(0, 500, n),
                          "ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
                          "segment": rng.choice(["web", "app"], n), "score": score,
                          "prediction": (score >= 0.5).astype(int)})
    labels = preds[["request_id", "customer", "ts"]].assign(label=label).iloc[: n // 2]  # half arrived
    labels.to_csv(tmp_path / "labels.csv", index=False)
    ref_preds = pd.DataFrame({"score": calibrated(n, 5)[0]})
    ref_preds["prediction"] = (ref_preds["score"] >= 0.5).astype(int)
    ref = profile_batches([table(ref_preds)])
    for join_on in ("request_id", ["customer", "ts"]):
        if join_on != "request_id":
            pq.write_table(table(labels.drop(columns=["request_id"])), tmp_path / "labels.parquet")
        source = "labels.csv" if join_on == "request_id" else "labels.parquet"
        monitor = DriftMonitor(columns=("score", "prediction"), model=ModelParams(
            score="score", prediction="prediction", label="label", labels=str(tmp_path / source),
            join_on=join_on, segments=("segment",)))
        report = monitor.check(reference=ref, current_batches=[table(preds)],
                               context=RunContext(host=host, workspace=None), reference_id="r", current_id="c",
                               current_frame_loader=lambda: preds, reference_metrics={"roc_auc": 0.99, "accuracy": 0.9},
                               send=False, launch=False)
        model = report.details["model"]
        assert model["labels_joined"] == n // 2 and model["labels_coverage"] == pytest.approx(0.5)
        overall = model["labelled"]["overall"]
        assert overall["rows"] == n // 2 and 0.75 < overall["roc_auc"] < 0.95
        assert set(model["labelled"]["segments"]["segment"]) == {"web", "app"}
        assert model["estimated"]["roc_auc"] == pytest.approx(overall["roc_auc"], abs=0.03)
        assert model["assumptions"] and model["confidence_current"] > 0.5
        assert model["class_rates_reference"] and model["class_rates_current"]
        signals = report.details["signals"]
        assert signals["performance.roc_auc"] == overall["roc_auc"]
        assert signals["performance_drop.roc_auc"] > 0.05  # the registered 0.99 was optimistic
        assert any(a["rule"] == "estimated-performance-drop" for a in report.alerts)


# --- the chain ---------------------------------------------------------------------------------


@pytest.fixture
def churn(tmp_path):
    target = tmp_path / "churn"
    shutil.copytree(REPO / "examples" / "churn", target, ignore=shutil.ignore_patterns(".tether", "__pycache__"))
    return target


def test_example_chain_monitors_inputs_and_predictions(churn, tether_cli):
    res = tether_cli("run", "chain.yaml", "--json", "--fail-on", "never", cwd=churn)
    assert res.exit_code == 0, res
    out = json.loads(res.stdout)["outputs"]
    drift = out["monitor"]["data"]
    flagged = {r["column"] for r in drift["results"] if r["drifted"]}
    assert {"monthly_charges", "contract"} <= flagged and "region" not in flagged
    assert "churned" not in {r["column"] for r in drift["results"]}
    assert drift["profile_id"] and drift["report"]
    assert (churn / ".tether" / "reports" / "drift.html").is_file()
    preds = out["predictions"]["data"]["details"]["model"]
    assert 0.5 < preds["estimated"]["roc_auc"] < 1 and preds["reference_metrics"]["roc_auc"] > 0.7
    assert drift["verdict"] == "critical"
    # a second run reuses the stored reference profile; by default a critical verdict exits 1
    res = tether_cli("run", "chain.yaml", "--json", cwd=churn)
    assert res.exit_code == 1 and "stage monitor" in res.stderr and "verdict CRITICAL" in res.stderr, res
    again = json.loads(res.stdout)["outputs"]
    assert again["monitor"]["data"]["profile_id"] == drift["profile_id"]


# --- CLI -----------------------------------------------------------------------------------------


def write_pair(tmp_path, n=3_000):
    ref, cur = data(n, 20), data(n, 21, shift=8.0)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    pq.write_table(table(cur), tmp_path / "cur.parquet")
    return tmp_path / "ref.csv", tmp_path / "cur.parquet"


def test_cli_drift_compares_two_files(tmp_path, tether_cli):
    ref, cur = write_pair(tmp_path)
    res = tether_cli("drift", ref, cur, "--time-column", "ts")
    assert res.exit_code == 0, res
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.split() and line.split()[0] in
             ("price", "qty", "kind")}
    assert "DRIFT" in lines["price"] and "DRIFT" not in lines["qty"] and "wasserstein" in lines["price"]
    res = tether_cli("drift", ref, cur, "--json", "--test", "price=ks", "--html", "out/r.html")
    body = json.loads(res.stdout)["data"]
    tests = {(r["column"], r["test"]) for r in body["results"]}
    assert ("price", "ks") in tests and (tmp_path / "out" / "r.html").is_file()


@pytest.mark.parametrize("args,message", [
    (("missing.csv", "cur.parquet"), "'missing.csv' is neither a file"),
    (("empty.csv", "cur.parquet"), "empty.csv' is empty"),
    (("ref.csv", "cur.parquet", "--test", "price"), "--test expects COLUMN=TEST"),
    (("ref.csv", "cur.parquet", "--test", "price=nope"), "unknown drift plugin 'nope'"),
    (("ref.csv", "cur.parquet", "--test", "kind=ks"), "'ks' needs a numeric column; 'kind' is categorical"),
    (("ref.csv", "bad.parquet"), "bad.parquet' cannot be read"),
])
def test_cli_drift_bad_input_is_one_line_exit_2(tmp_path, tether_cli, args, message):
    write_pair(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    res = tether_cli("drift", *args)
    assert res.exit_code == 2, res
    assert res.stderr.startswith("tether: error: ") and message in res.stderr and res.stderr.count("\n") == 1


def test_cli_profile_then_monitor_with_exit_codes(tmp_path, tether_cli):
    ref, cur = write_pair(tmp_path)
    res = tether_cli("profile", ref, "--name", "orders", "--time-column", "ts", "--json")
    assert res.exit_code == 0, res
    prof = json.loads(res.stdout)["data"]
    assert prof["version"] == 1 and prof["num_rows"] == 3_000
    # same data as the reference: no critical alert, exit 0
    same = tmp_path / "same.parquet"
    pq.write_table(table(data(3_000, 22)), same)
    ok = tether_cli("monitor", same, "--reference", "orders", "--time-column", "ts")
    assert ok.exit_code == 0, ok
    # drifted price + a critical rule: exit 1, alert written to the file sink
    (tmp_path / "monitor.yaml").write_text(
        "alerts:\n"
        "  rules:\n"
        "    - {name: price-drift, signal: drift.column.price, above: 1, severity: critical, action: retrain}\n"
        "  sinks:\n"
        "    - {plugin: file, params: {path: alerts.jsonl}}\n")
    bad = tether_cli("monitor", cur, "--reference", "orders", "--config", "monitor.yaml", "--html", "r.html")
    assert bad.exit_code == 1, bad
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["rule"] for a in alerts] == ["price-drift"] and alerts[0]["severity"] == "critical"
    assert (tmp_path / "r.html").is_file()
    # an empty window is critical (health error), not a crash
    pq.write_table(table(data(3_000, 22)).slice(0, 0), tmp_path / "empty.parquet")
    empty = tether_cli("monitor", "empty.parquet", "--reference", "orders", "--json")
    assert empty.exit_code == 1, empty
    body = json.loads(empty.stdout)["data"]
    assert body["results"] == [] and "volume.empty" in {f["check"] for f in body["findings"]}
    # bad config: exit 2, one line
    (tmp_path / "bad.yaml").write_text(
        "alerts:\n  rules:\n    - {name: x, signal: drift.share, severity: fatal, above: 1}\n")
    res = tether_cli("monitor", cur, "--reference", "orders", "--config", "bad.yaml")
    assert res.exit_code == 2 and "severity: 'fatal' is not one of info, warning, critical" in res.stderr, res
    res = tether_cli("monitor", cur, "--reference", "nope")
    assert res.exit_code == 2 and "'nope' is neither a file, a stored profile nor a snapshot" in res.stderr, res


def test_cli_drift_accepts_snapshot_ids_and_stored_profiles(tmp_path, workspace, tether_cli):
    from tether.plugins.snapshots.create import take_snapshot

    _, cur = write_pair(tmp_path)
    snap = take_snapshot(table(data(3_000, 20)), name="orders", source="test", workspace=workspace, time_column="ts")
    workspace.store.put(snap)
    workspace.close()
    res = tether_cli("drift", snap.id, cur, "-w", workspace.root, "--json")
    assert res.exit_code == 0, res
    body = json.loads(res.stdout)["data"]
    assert body["reference_id"] == f"snapshot:{snap.id}"
    assert {r["column"] for r in body["results"] if r["drifted"]} == {"price"}
    assert "ts" not in {r["column"] for r in body["results"]}  # the snapshot's time column
    made = tether_cli("profile", snap.id, "--name", "orders", "-w", workspace.root, "--json")
    prof = json.loads(made.stdout)["data"]
    assert prof["snapshot_id"] == snap.id and prof["time_column"] == "ts"
    res = tether_cli("drift", "orders", cur, "-w", workspace.root, "--json")
    again = json.loads(res.stdout)["data"]
    assert again["profile_id"] == prof["id"]
    assert [r["statistic"] for r in again["results"]] == [r["statistic"] for r in body["results"]]


def test_reference_and_current_can_be_chosen_windows_of_one_snapshot(workspace, context):
    from tether.plugins.monitoring.windows import SnapshotWindow
    from tether.plugins.snapshots.create import take_snapshot

    frame = pd.concat([data(4_000, 30, start="2026-01-01", days=4),
                       data(2_000, 31, start="2026-01-05", days=2, shift=10.0)], ignore_index=True)
    snap = take_snapshot(table(frame), name="orders", source="test", workspace=workspace, time_column="ts")
    workspace.store.put(snap)
    monitor = context.host.backends.create("monitor", "drift", {"windows": {
        "reference_range": ["2026-01-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00"],
        "current_range": ["2026-01-05T00:00:00+00:00", None]}})
    rec, ref = monitor.reference_for_snapshot(snap, context)
    assert ref.rows == 4_000 and "range=[2026-01-01" in rec.source
    whole, _ = DriftMonitor().reference_for_snapshot(snap, context)
    assert whole.id != rec.id and whole.num_rows == 6_000
    report = monitor.check(reference=ref, current_batches=SnapshotWindow(snapshot=snap.id).batches(context=context),
                           context=context, reference_id=snap.id, current_id=snap.id, time_column="ts",
                           send=False, launch=False)
    assert report.details["current_rows"] == 2_000
    assert report.details["drifted_columns"] == ["price"]


def test_validity_against_the_workspaces_feature_definitions(workspace, context):
    from tether.records import RECORD_KINDS

    feature = RECORD_KINDS["feature"]
    for version, rng in ((1, (0.0, 1000.0)), (2, (30.0, 70.0))):  # the latest version counts
        workspace.store.put(feature(id=f"feat-price-{version}", name="price", version=version, digest=f"d{version}",
                                    valid_range=rng, max_missing_share=0.0))
    workspace.store.put(feature(id="feat-kind-1", name="kind", version=1, digest="k", allowed_values=("a", "b"),
                                max_cardinality=2))
    ref = profile_batches([table(data(2_000, 40))])
    cur = data(2_000, 41)
    cur.loc[:9, "price"] = np.nan
    report = DriftMonitor().check(reference=ref, current_batches=[table(cur)], context=context,
                                  reference_id="r", current_id="c", send=False, launch=False)
    got = {(f.check, f.evidence.get("column")) for f in report.findings if f.severity == "error"}
    assert got == {("validity.range", "price"), ("validity.missing", "price"), ("validity.allowed", "kind"),
                   ("validity.cardinality", "kind")}
    quiet = DriftMonitor(health=HealthParams(definitions=False)).check(
        reference=ref, current_batches=[table(cur)], context=context, reference_id="r", current_id="c",
        send=False, launch=False)
    assert not [f for f in quiet.findings if f.check.startswith("validity.") and f.severity == "error"]


def test_cli_monitor_weekly_windows_and_html_trend(tmp_path, tether_cli):
    ref = data(4_000, 50, start="2026-01-05", days=14)
    weeks = [data(1_500, 51 + w, start=f"2026-02-{2 + 7 * w:02d}", days=7, shift=12.0 * (w == 2)) for w in range(3)]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    pq.write_table(table(pd.concat(weeks, ignore_index=True)), tmp_path / "cur.parquet")
    res = tether_cli("monitor", "cur.parquet", "--reference", "ref.csv", "--time-column", "ts", "--window", "weekly",
                     "--json", "--html", "weekly.html")
    assert res.exit_code in (0, 1), res
    trend = json.loads(res.stdout)["data"]["details"]["windows"]
    assert [t["window"] for t in trend] == ["2026-02-02 (week)", "2026-02-09 (week)", "2026-02-16 (week)"]
    assert [t["drifted"] for t in trend] == [[], [], ["price"]]
    page = (tmp_path / "weekly.html").read_text()
    assert 'data-figure="trend"' in page  # the trend chart, drawn by the page (tests/test_monitor_report.py)
    assert all(f"<td>{t['window']}</td>" in page for t in trend)  # and the windows table


# --- config mistakes, references, exit codes, text output ---------------------------------------

MONITOR_CHAIN = """\
version: 1
name: watch
workspace: .tether
stages:
  - {{stage: snapshot, id: ref, plugin: csv, params: {{path: ref.csv, dataset: orders}}}}
  - stage: monitor
    plugin: drift
    inputs: {{reference: ref}}
    params: {params}
"""


def write_chain(tmp_path, params: str) -> str:
    write_pair(tmp_path)
    (tmp_path / "chain.yaml").write_text(MONITOR_CHAIN.format(params=params))
    return "chain.yaml"


@pytest.mark.parametrize("params,message", [
    ("{drift: {sketch_size: 0}}", "stages[1].params.drift.sketch_size: must be at least 2, got 0"),
    ("{drift: {max_categories: -1}}", "stages[1].params.drift.max_categories: must be at least 1"),
    ("{drift: {sample_rows: -5}}", "stages[1].params.drift.sample_rows: must be at least 0"),
    ("{alerts: {critical_share: -5}}", "stages[1].params.alerts.critical_share: a share must be in [0, 1]"),
    ("{alerts: {warn_share: 0.6, critical_share: 0.4}}",
     "stages[1].params.alerts.warn_share: must be at most critical_share (0.4), got 0.6"),
    ("{workers: 0}", "stages[1].params.workers: must be at least 1, got 0"),
    ("{health: {volume_change: -1}}", "stages[1].params.health.volume_change: must be at least 0"),
    ("{health: {missing_change: 2}}", "stages[1].params.health.missing_change: a share must be in [0, 1]"),
    ("{health: {expected_rows: 0}}", "stages[1].params.health.expected_rows: must be at least 1"),
    ("{health: {max_lag_hours: -3}}", "stages[1].params.health.max_lag_hours: must be above 0"),
    ("{model: {score: s, threshold: 1.5}}", "stages[1].params.model.threshold: must be in [0, 1]"),
    ("{windows: {profile_name: 'a/b'}}", "stages[1].params.windows.profile_name: the profile name 'a/b'"),
    ("{windows: {every: hourly}}", "stages[1].params.windows.every: 'hourly' is not one of none, daily, weekly"),
    ("{alerts: {sinks: [file]}}", "stages[1].params.alerts.sinks[0]: expected a mapping {plugin, params}"),
    ("{drift: {tests: {price: 3}}}", "stages[1].params.drift.tests.price: expected a test name or a list"),
])
def test_bad_monitor_params_fail_when_the_chain_is_validated(tmp_path, host, params, message):
    from tether.config import load_chain
    from tether.errors import ConfigError

    write_chain(tmp_path, params)
    with pytest.raises(ConfigError) as err:
        load_chain(tmp_path / "chain.yaml", host)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("params,message", [
    ("{windows: {current: {plugin: file, params: {path: cur.parquet, batch_rows: 0}}}}",
     "stages[1].params.windows.current.params.batch_rows: must be at least 1, got 0"),
    ("{windows: {current: {plugin: nope}}}", "stages[1].params.windows.current.plugin: unknown window plugin 'nope'"),
    ("{drift: {test_params: {ks: {threshold: 1.5}}}}",
     "stages[1].params.drift.test_params.ks.threshold: a p-value threshold must be in (0, 1)"),
    ("{drift: {tests: {price: nope}}}", "stages[1].params.drift.tests.price: unknown drift plugin 'nope'"),
])
def test_window_sources_and_tests_are_checked_before_the_run(tmp_path, tether_cli, params, message):
    chain = write_chain(tmp_path, params)
    res = tether_cli("run", chain)
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res
    assert tether_cli("runs", "ls", "--json").stdout.count('"run-') == 0  # nothing recorded


def test_batch_rows_of_window_sources_must_be_positive(host):
    from tether.errors import ConfigError

    for plugin, params in (("file", {"path": "x.csv"}), ("snapshot", {"snapshot": "s"}), ("deployment", {})):
        with pytest.raises(ConfigError, match=r"w\.params\.batch_rows: must be at least 1, got 0"):
            host.backends.create("window", plugin, {**params, "batch_rows": 0}, where="w")


def test_monitor_columns_missing_from_the_data_are_an_error_not_ok(tmp_path, host, tether_cli):
    from tether.errors import DataError

    ref, cur = table(data(500, 60)), table(data(500, 61))
    with pytest.raises(DataError, match="columns: 'prise' is in neither the reference nor the current window"):
        DriftMonitor(columns=("prise",)).check(reference=profile_batches([ref]), current_batches=[cur],
                                               context=RunContext(host=host, workspace=None), reference_id="r",
                                               current_id="c", send=False, launch=False)
    gone = DriftMonitor(columns=("price", "extra")).check(  # in the reference only: a finding, critical
        reference=profile_batches([ref.append_column("extra", pa.array(np.ones(500)))]),
        current_batches=[cur], context=RunContext(host=host, workspace=None), reference_id="r", current_id="c",
        send=False, launch=False)
    assert gone.verdict == "critical" and "schema.removed" in {f.check for f in gone.findings}
    write_pair(tmp_path)
    (tmp_path / "cols.yaml").write_text("columns: [price, prise]\n")
    res = tether_cli("monitor", "cur.parquet", "-r", "ref.csv", "-c", "cols.yaml")
    assert res.exit_code == 2 and "columns: 'prise' is in neither the reference" in res.stderr, res
    assert "verdict" not in res.stdout


def test_cli_profile_rejects_an_empty_name(tmp_path, tether_cli):
    write_pair(tmp_path)
    res = tether_cli("profile", "ref.csv", "-n", "")
    assert res.exit_code == 2 and "--name: the profile name must be a non-empty string" in res.stderr, res
    res = tether_cli("profile", "ref.csv", "-n", "../up")
    assert res.exit_code == 2 and "--name: the profile name '../up'" in res.stderr, res


def test_cli_drift_on_duplicate_column_names_is_one_line(tmp_path, tether_cli):
    (tmp_path / "dup.csv").write_text("a,a,b\n1,2,x\n3,4,y\n")
    res = tether_cli("drift", "dup.csv", "dup.csv")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res
    assert "duplicate column names: 'a'" in res.stderr and "internal error" not in res.stderr


def test_file_windows_read_csv_like_every_other_command(tmp_path, host):
    from tether.plugins.monitoring.windows import FileWindow

    (tmp_path / "w.csv").write_text("price,kind\n1.5,a\n2.5,NA\n,\n4.0,b\n")
    (tmp_path / "w.tsv").write_text("price\tkind\n1.5\ta\n2.5\tNA\n")
    prof = profile_batches(FileWindow(path=str(tmp_path / "w.csv")).batches(context=None))
    assert prof.columns["kind"].missing == 2 and prof.columns["price"].missing == 1  # "NA" and "" are missing
    assert profile_batches(file_batches(tmp_path / "w.tsv")).columns["kind"].missing == 1
    (tmp_path / "w.xlsx").write_bytes(b"PK")
    from tether.errors import DataError

    with pytest.raises(DataError, match="unknown format"):
        list(FileWindow(path=str(tmp_path / "w.xlsx")).batches(context=None))


def test_cli_references_resolve_like_the_snapshot_commands(tmp_path, workspace, tether_cli):
    from tether.plugins.snapshots.create import take_snapshot

    _, cur = write_pair(tmp_path)
    snaps = []
    for seed in (20, 23):
        snap = take_snapshot(table(data(3_000, seed)), name="orders", source="test", workspace=workspace,
                             time_column="ts")
        workspace.store.put(snap)
        snaps.append(snap)
    workspace.close()
    ws = ["-w", workspace.root, "--json", "--fail-on", "never"]
    for ref, snap in (("orders@1", snaps[0]), ("orders", snaps[1]), (snaps[0].id[:12], snaps[0])):
        res = tether_cli("drift", ref, cur, *ws)
        assert res.exit_code == 0, res
        assert json.loads(res.stdout)["data"]["reference_id"] == f"snapshot:{snap.id}"
    res = tether_cli("monitor", cur, "-r", "orders@v1", *ws)
    assert json.loads(res.stdout)["data"]["reference_id"] == f"snapshot:{snaps[0].id}", res
    made = tether_cli("profile", "orders@1", "-n", "base", "-w", workspace.root, "--json")
    prof = json.loads(made.stdout)["data"]
    assert made.exit_code == 0 and prof["snapshot_id"] == snaps[0].id, made
    res = tether_cli("drift", prof["id"][:12], cur, *ws)
    assert json.loads(res.stdout)["data"]["profile_id"] == prof["id"], res
    res = tether_cli("drift", "nope", cur, "-w", workspace.root)
    assert res.exit_code == 2 and "'nope' is neither a file, a stored profile nor a snapshot" in res.stderr, res
    res = tether_cli("drift", "ref.csv", "nope", "-w", workspace.root)
    assert res.exit_code == 2 and "'nope' is neither a file nor a snapshot" in res.stderr, res
    res = tether_cli("drift", "orders@9", cur, "-w", workspace.root)
    assert res.exit_code == 2 and "'orders' has no version 9 (versions: 1, 2)" in res.stderr, res


def critical_pair(tmp_path):
    ref = data(2_000, 70)
    cur = data(2_000, 71, shift=15.0)
    cur["kind"] = np.random.default_rng(1).choice(["c", "d"], 2_000)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)


@pytest.mark.parametrize("command", [("drift", "ref.csv", "cur.csv"), ("monitor", "cur.csv", "-r", "ref.csv")])
def test_cli_exit_codes_follow_fail_on(tmp_path, tether_cli, command):
    critical_pair(tmp_path)
    res = tether_cli(*command)
    assert res.exit_code == 1, res
    assert "verdict: CRITICAL" in res.stdout and "verdict CRITICAL (--fail-on critical" in res.stderr
    assert res.stderr.startswith("tether: error: ") and res.stderr.count("\n") == 1
    assert tether_cli(*command, "--fail-on", "never").exit_code == 0
    write_pair(tmp_path)  # only price drifted: a warning
    warn = (command[0], *[{"cur.csv": "cur.parquet"}.get(a, a) for a in command[1:]])
    res = tether_cli(*warn, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["data"]["verdict"] == "warning", res
    assert tether_cli(*warn, "--fail-on", "warning").exit_code == 1


def test_cli_text_output_is_aligned_and_shows_the_window_trend(tmp_path, tether_cli):
    ref = data(4_000, 50, start="2026-01-05", days=14)
    weeks = [data(1_500, 51 + w, start=f"2026-02-{2 + 7 * w:02d}", days=7, shift=12.0 * (w == 2)) for w in range(3)]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    pq.write_table(table(pd.concat(weeks, ignore_index=True)), tmp_path / "cur.parquet")
    res = tether_cli("monitor", "cur.parquet", "-r", "ref.csv", "--time-column", "ts", "--window", "weekly",
                     "--fail-on", "never")
    assert res.exit_code == 0, res
    out = res.stdout
    for label in ("2026-02-02 (week)", "2026-02-09 (week)", "2026-02-16 (week)"):
        assert label in out
    trend = [line for line in out.splitlines() if "(week)" in line]
    assert "price" in trend[2] and "price" not in trend[0]
    assert "['" not in out and "{" not in out and "None" not in out  # no Python reprs
    rows = [line for line in out.splitlines() if line.strip().split(" ")[0] in ("price", "qty", "kind")]
    ends = {line.index("DRIFT") if "DRIFT" in line else line.rindex("ok") for line in rows}
    assert len(rows) == 3 and len(ends) == 1  # the drift column lines up
