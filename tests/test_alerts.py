"""Alert rules, de-duplication and cooldown, sinks (log, file, real HTTP webhook), retraining
triggers that launch a chain, and the rollback interface."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tether import hookimpl
from tether.backends import Rollback
from tether.context import RunContext
from tether.errors import ConfigError
from tether.plugins.monitoring.alerts import AlertRule, fire, verdict_of
from tether.plugins.monitoring.monitor import DriftMonitor
from tether.plugins.monitoring.params import AlertParams
from tether.plugins.monitoring.profiles import profile_batches
from tether.plugins.monitoring.sinks import deliver
from tether.plugins.monitoring.triggers import Trigger, run_triggers

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)


def rule(**kw) -> AlertRule:
    return AlertRule.from_config({"name": "r", "signal": "drift.share", "above": 0.3, **kw}, "rules[0]")


def test_rules_fire_with_severity_and_action():
    signals = {"drift.share": 0.4, "drift.column.a": 1.0, "drift.column.b": 0.0, "estimated.roc_auc": 0.61}
    alerts = fire([rule(severity="warning"),
                   rule(name="cols", signal="drift.column.*", above=1, severity="critical", action="retrain"),
                   rule(name="auc", signal="estimated.roc_auc", above=None, below=0.7, action="roll_back")],
                  signals, state_path=None, now=NOW)
    assert [(a["rule"], a["signal"], a["severity"], a["action"]) for a in alerts] == [
        ("r", "drift.share", "warning", "investigate"), ("cols", "drift.column.a", "critical", "retrain"),
        ("auc", "estimated.roc_auc", "warning", "roll_back")]
    assert verdict_of(alerts) == "critical" and verdict_of(alerts[:1]) == "warning" and verdict_of([]) == "ok"
    assert fire([rule()], {"drift.share": 0.29}, state_path=None) == []


@pytest.mark.parametrize("raw,message", [
    ({"name": "x", "signal": "s"}, "exactly one of 'above' or 'below'"),
    ({"name": "x", "signal": "s", "above": 1, "severity": "fatal"}, "severity: 'fatal' is not one of"),
    ({"name": "x", "signal": "s", "above": 1, "action": "panic"}, "action: 'panic' is not one of"),
    ({"name": "x", "signal": "s", "above": 1, "colour": "red"}, "unknown key 'colour'"),
    ({"signal": "s", "above": 1}, "rules[0].name: required"),
])
def test_bad_rules_are_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        AlertRule.from_config(raw, "rules[0]")


def test_deduplication_and_cooldown_survive_between_runs(tmp_path):
    state = tmp_path / "state.json"
    rules = [rule(cooldown_minutes=30)]
    first = fire(rules + rules, {"drift.share": 0.5}, state_path=state, now=NOW)
    assert [a["suppressed"] for a in first] == [False, True]  # same rule and subject twice: one alert
    again = fire(rules, {"drift.share": 0.5}, state_path=state, now=NOW + dt.timedelta(minutes=10))
    assert again[0]["suppressed"] is True  # within the cooldown
    later = fire(rules, {"drift.share": 0.5}, state_path=state, now=NOW + dt.timedelta(minutes=31))
    assert later[0]["suppressed"] is False
    assert json.loads(state.read_text())["r|drift.share"] == (NOW + dt.timedelta(minutes=31)).isoformat()


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    status: ClassVar[int] = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], self.headers.get("X-Token"),
                                    json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received, _Hook.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Hook
    server.shutdown()
    server.server_close()


def test_sinks_log_file_and_webhook(tmp_path, host, webhook, capsys):
    url, handler = webhook
    context = RunContext(host=host, workspace=None)
    alerts = fire([rule(severity="critical")], {"drift.share": 0.9}, state_path=None, now=NOW)
    sinks = [{"plugin": "log"}, {"plugin": "file", "params": {"path": str(tmp_path / "a.jsonl")}},
             {"plugin": "webhook", "params": {"url": url + "/hooks/tether", "headers": {"X-Token": "t0k"}}}]
    assert deliver(alerts, sinks, backends=host.backends, context=context, report_id="mon-1") == []
    line = json.loads((tmp_path / "a.jsonl").read_text())
    assert line["rule"] == "r" and line["report"] == "mon-1"
    path, ctype, token, body = handler.received[0]
    assert (path, ctype, token) == ("/hooks/tether", "application/json", "t0k")
    assert body["report"] == "mon-1" and body["alerts"][0]["severity"] == "critical"
    # a failing endpoint is reported, not raised; suppressed alerts are not sent
    handler.status = 500
    errors = deliver(alerts, sinks[2:], backends=host.backends, context=context, report_id="mon-2")
    assert errors == [f"sink webhook: webhook {url}/hooks/tether answered HTTP 500"]
    quiet = [{**alerts[0], "suppressed": True}]
    assert deliver(quiet, sinks[2:], backends=host.backends, context=context, report_id="mon-3") == []
    assert len(handler.received) == 2


def test_monitor_sends_to_the_webhook_once_per_cooldown(tmp_path, host, webhook):
    url, handler = webhook
    rng = np.random.default_rng(0)
    ref = profile_batches([pa.table({"x": rng.normal(0, 1, 3_000)})])
    monitor = DriftMonitor(alerts=AlertParams(
        rules=({"name": "x", "signal": "drift.column.x", "above": 1, "severity": "critical", "action": "investigate"},),
        sinks=({"plugin": "webhook", "params": {"url": url}},)))
    context = RunContext(host=host, workspace=None)
    for _ in range(2):
        report = monitor.check(reference=ref, current_batches=[pa.table({"x": rng.normal(2, 1, 3_000)})],
                               context=context, reference_id="r", current_id="c", state_path=tmp_path / "s.json")
        assert report.verdict == "critical"
    assert len(handler.received) == 1 and report.alerts[0]["suppressed"] is True


SMALL_CHAIN = """\
version: 1
name: retrain
workspace: {ws}
stages:
  - {{stage: snapshot, plugin: csv, params: {{path: data.csv, dataset: d}}}}
"""


@pytest.fixture
def chain(tmp_path, workspace):
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(tmp_path / "data.csv", index=False)
    path = tmp_path / "retrain.yaml"
    path.write_text(SMALL_CHAIN.format(ws=workspace.root))
    return path


def test_triggers_launch_the_configured_chain(chain, context):
    signals = {"drift.share": 0.6, "rows": 50_000, "performance.roc_auc": 0.62, "estimated.roc_auc": 0.8}
    triggers = [Trigger.from_config(t, f"triggers[{i}]") for i, t in enumerate([
        {"type": "schedule", "every_hours": 24, "chain": str(chain)},  # never ran: due
        {"type": "drift", "share": 0.5, "chain": str(chain)},
        {"type": "volume", "rows": 100_000, "chain": str(chain)},  # not enough new rows
        {"type": "performance", "metric": "roc_auc", "below": 0.7, "chain": str(chain), "launch": False},
        {"type": "performance", "metric": "roc_auc", "below": 0.7, "source": "estimated", "chain": str(chain)},
    ])]
    done = run_triggers(triggers, signals, context=context, now=NOW)
    assert [d["type"] for d in done] == ["schedule", "drift", "performance"]
    assert "last run never" in done[0]["reason"]
    assert done[1]["status"] == "succeeded" and done[1]["run_id"].startswith("run-")
    assert done[2]["run_id"] is None and "labelled roc_auc 0.6200 < 0.7" in done[2]["reason"]
    runs = context.store.find("run", name="retrain")
    assert {r.id for r in runs} == {done[0]["run_id"], done[1]["run_id"]}
    # the schedule now sees the recent run and waits; a day later it is due again
    now = dt.datetime.now(dt.timezone.utc)
    assert run_triggers(triggers[:1], signals, context=context, now=now) == []
    due = run_triggers([attrs.evolve(triggers[0], launch=False)], signals, context=context,
                       now=now + dt.timedelta(hours=25))
    assert due and due[0]["run_id"] is None
    with pytest.raises(ConfigError, match=r"triggers\[0\].rows: required"):
        Trigger.from_config({"type": "volume"}, "triggers[0]")


@attrs.frozen(kw_only=True)
class RecordingRollback(Rollback):
    name: ClassVar[str] = "recording"
    calls: ClassVar[list] = []

    def rollback(self, deployment, *, reason, context):
        type(self).calls.append((deployment.id, reason))
        return attrs.evolve(deployment, id=deployment.id + "-previous")


class RollbackPlugin:
    @hookimpl
    def tether_add_backends(self, backends):
        backends.add(RecordingRollback)


def test_roll_back_action_calls_the_deployment_plugin(host):
    from tether.records import Deployment

    host.register(RollbackPlugin(), name="rollback-test")
    RecordingRollback.calls.clear()
    rng = np.random.default_rng(1)
    ref = profile_batches([pa.table({"score": rng.random(2_000)})])
    dep = Deployment(id="deploy-1", model_version_id="mv-1", target="batch", status="completed")
    monitor = DriftMonitor(alerts=AlertParams(rules=({"name": "bad-scores", "signal": "drift.column.score", "above": 1,
                                                      "severity": "critical", "action": "roll_back"},),
                                              rollback={"plugin": "recording"}))
    report = monitor.check(reference=ref, current_batches=[pa.table({"score": rng.random(2_000) ** 4})],
                           context=RunContext(host=host, workspace=None), reference_id="r", current_id="c",
                           deployment=dep)
    assert report.details["rollback"]["status"] == "rolled_back"
    assert report.details["rollback"]["deployment"] == "deploy-1-previous"
    assert RecordingRollback.calls == [("deploy-1", "drift.column.score = 1 (>= 1)")]


# --- sinks and rollback are checked before anything runs ---------------------------------------

ALERT_CHAIN = """\
version: 1
name: watch
workspace: .tether
stages:
  - {{stage: snapshot, id: ref, plugin: csv, params: {{path: data.csv, dataset: d}}}}
  - stage: monitor
    plugin: drift
    inputs: {{reference: ref, current: ref}}
    params: {{alerts: {alerts}}}
"""


@pytest.mark.parametrize("alerts,message", [
    ("{sinks: [{plugin: slack}]}", "stages[1].params.alerts.sinks[0].plugin: unknown alert_sink plugin 'slack'"),
    ("{sinks: [{plugin: log}, {plugin: file}]}",
     "stages[1].params.alerts.sinks[1].params: missing required parameter path"),
    ("{sinks: [{plugin: webhook, params: {url: 'ftp://x'}}]}",
     "stages[1].params.alerts.sinks[0].params.url: must start with http:// or https://"),
    ("{sinks: [{plugin: webhook, params: {url: 'http://x', timeout: 0}}]}",
     "stages[1].params.alerts.sinks[0].params.timeout: must be above 0"),
    ("{rollback: {plugin: nope}}", "stages[1].params.alerts.rollback.plugin: unknown rollback plugin 'nope'"),
    ("{sinks: [{plugin: log, colour: red}]}", "stages[1].params.alerts.sinks[0]: unknown key 'colour'"),
])
def test_bad_sinks_and_rollback_fail_before_the_run_and_lose_nothing(tmp_path, tether_cli, alerts, message):
    pd.DataFrame({"a": np.arange(50.0)}).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "chain.yaml").write_text(ALERT_CHAIN.format(alerts=alerts))
    res = tether_cli("run", "chain.yaml")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res
    assert '"run-' not in tether_cli("runs", "ls", "--json").stdout  # no run recorded


def test_cli_monitor_checks_sinks_before_reading_data(tmp_path, tether_cli):
    pd.DataFrame({"a": np.arange(50.0)}).to_csv(tmp_path / "ref.csv", index=False)
    (tmp_path / "m.yaml").write_text("alerts: {sinks: [{plugin: file, params: {path: a.jsonl, mode: x}}]}\n")
    res = tether_cli("monitor", "missing.csv", "-r", "ref.csv", "-c", "m.yaml")
    assert res.exit_code == 2 and "alerts.sinks[0].params: unknown parameter 'mode'" in res.stderr, res


@pytest.mark.parametrize("params,message", [
    ({"critical_share": -5}, "critical_share: a share must be in [0, 1], got -5"),
    ({"warn_share": 1.5}, "warn_share: a share must be in [0, 1], got 1.5"),
    ({"warn_share": 0.6, "critical_share": 0.5}, "warn_share: must be at most critical_share (0.5), got 0.6"),
])
def test_alert_shares_are_checked(host, params, message):
    with pytest.raises(ConfigError) as err:
        host.backends.create("monitor", "drift", {"alerts": params}, where="m")
    assert f"m.params.alerts.{message}" in str(err.value)
