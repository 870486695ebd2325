"""``tether serve`` against a real uvicorn server on 127.0.0.1 driven by httpx: canary
share and stickiness, automatic promotion and rollback, shadow traffic, a blue-green
switch under load, bad input, and the prediction log read by ``tether monitor``."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_helpers import (  # noqa: E402
    build_project,
    data_rows,
    row,
    save_reference,
    start_deployment,
    wait_for,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from tether.manager import PluginHost
    from tether.workspace import Workspace

    root = tmp_path_factory.mktemp("serve")
    sys.path.insert(0, str(root))
    try:
        host = PluginHost(entry_points=False)
        versions = build_project(root, host)
        with Workspace.open(host, root / ".tether") as ws:
            save_reference(ws)
    finally:
        sys.path.remove(str(root))
    return SimpleNamespace(root=root, workspace=root / ".tether", v=SimpleNamespace(**versions))


@pytest.fixture
def ws(project, host):
    from tether.workspace import Workspace

    workspace = Workspace.open(host, project.workspace)
    yield workspace
    workspace.close()


@pytest.fixture
def serve(project):
    """Start a server for an environment in a thread: ``serve(env, **settings)``."""
    from tether.contrib.serve.server import Server, ServeSettings
    from tether.manager import PluginHost

    started = []

    def start(environment: str, **settings):
        settings = {"reload_interval": 0.1, "roll_seconds": 0.2, **settings}
        server = Server(PluginHost(entry_points=False),
                        ServeSettings(workspace=str(project.workspace), environment=environment, port=0, **settings))
        started.append(server.start())
        client = httpx.Client(base_url=server.url, timeout=60)
        started.append(client)
        wait_for(lambda: client.get("/health").status_code == 200, what="the server to load its deployment")
        return SimpleNamespace(server=server, client=client, url=server.url)

    yield start
    for item in reversed(started):
        (item.close if isinstance(item, httpx.Client) else item.stop)()


@pytest.fixture
def serve_cli(project):
    """Start ``tether serve`` in a subprocess for an environment: ``serve_cli(env, *options)``."""
    import os
    import socket
    import subprocess
    from pathlib import Path

    procs = []

    def start(environment: str, *options: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        tests = str(Path(__file__).resolve().parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "tether", "serve", "-w", str(project.workspace), "-e",
                                 environment, "--port", str(port), "--reload-interval", "0.1", *options],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert proc.poll() is None, proc.stderr.read()
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, what="tether serve to listen and load its deployment")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(30)


def predict_all(url: str, rows: list[dict], *, threads: int = 4) -> list[httpx.Response]:
    """POST every row as its own request, from ``threads`` clients at once."""
    local = threading.local()

    def one(r):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
        return local.client.post("/predict", json=r)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, rows))


def log_table(server):
    import pyarrow as pa
    from tether.plugins.tables import read_file_table

    server.server.log.flush()
    return read_file_table(server.server.settings.log_folder) if server.server.log.files else pa.table({})


NO_DECISION = {"interval": 3600, "min_requests": 1_000_000}


# --- canary routing -------------------------------------------------------------------


@pytest.mark.slow
def test_a_20_percent_canary_over_5000_requests_lands_within_3_points_and_is_sticky(project, ws, serve_cli):
    start_deployment(ws, environment="canary-share", strategy="canary", version=project.v.candidate,
                     stable=project.v.stable, weight=20, steps=(20, 100), rollback_target=project.v.stable,
                     analysis=NO_DECISION)
    url = serve_cli("canary-share", "--log-inputs", "none")
    keys = [row(i) for i in range(2500)]
    requests = keys + keys[::-1]  # every key twice, in another order
    responses = predict_all(url, requests)
    assert [r.status_code for r in responses] == [200] * 5000
    answers = [r.json() for r in responses]
    share = sum(a["arm"] == "canary" for a in answers) / len(answers)
    assert 0.17 <= share <= 0.23, share
    seen: dict[str, set] = {}
    for request, answer in zip(requests, answers):
        seen.setdefault(request["customer_id"], set()).add((answer["arm"], answer["model_version"]))
    assert all(len(arms) == 1 for arms in seen.values())  # sticky: one arm per key
    canary_versions = {v for arms in seen.values() for arm, v in arms if arm == "canary"}
    assert canary_versions == {project.v.candidate}


def test_a_healthy_canary_is_promoted_step_by_step_with_its_evidence_recorded(project, ws, serve):
    from tether.plugins.rollout.state import active_deployment, events

    analysis = {"interval": 0.3, "min_requests": 30, "reference": "churn-inputs",
                "signals": {"error_rate": {"max_increase": 0.01}, "latency_p95": {"max_ratio": 3, "min_delta_ms": 200},
                            "prediction_drift": {"test": "ks", "threshold": 0.0001},
                            "input_drift": {"test": "ks", "threshold": 0.0001, "max_drifted_share": 0.5}}}
    dep = start_deployment(ws, environment="canary-good", strategy="canary", version=project.v.candidate,
                           stable=project.v.stable, weight=25, steps=(25, 50, 100), rollback_target=project.v.stable,
                           analysis=analysis)
    srv = serve("canary-good")
    rows = iter(data_rows(20_000))  # distinct customers, drawn like the training data
    statuses = []

    def promoted():
        batch = [next(rows) for _ in range(200)]
        statuses.extend(r.status_code for r in predict_all(srv.url, batch, threads=2))
        return active_deployment(ws.store, "canary-good").state == "promoted"

    wait_for(promoted, what="the canary to be promoted")
    assert set(statuses) == {200}
    history = events(ws.store, dep.id)
    assert [(e.action, e.weight) for e in history] == [("advanced", 50.0), ("promoted", 100.0)], history[-1].reason
    for event in history:
        signals = {s["signal"]: s for s in event.evidence["signals"]}
        assert set(signals) == {"error_rate", "latency_p95", "prediction_drift", "input_drift"}
        assert all(s["healthy"] for s in signals.values())
        assert event.evidence["window"]["canary"]["requests"] >= 30
        assert "drifted" in signals["input_drift"]["detail"]  # judged against the stored profile
    wait_for(lambda: srv.client.get("/metadata").json()["deployment"]["state"] == "promoted", what="the new plan")
    after = [r.json() for r in predict_all(srv.url, [next(rows) for _ in range(100)])]
    assert {(a["arm"], a["model_version"]) for a in after} == {("live", project.v.candidate)}


@pytest.mark.parametrize("broken", ["exploding", "slow"])
def test_a_failing_canary_is_rolled_back_and_no_request_fails_during_the_switch(project, ws, serve, broken):
    from tether.plugins.rollout.state import active_deployment, events

    signal = {"exploding": {"error_rate": {"max_increase": 0.05}},
              "slow": {"latency_p95": {"max_ratio": 1.0, "min_delta_ms": 30}}}[broken]
    env = f"canary-{broken}"
    dep = start_deployment(ws, environment=env, strategy="canary", version=getattr(project.v, broken),
                           stable=project.v.stable, weight=30, steps=(30, 100), rollback_target=project.v.stable,
                           analysis={"interval": 60, "min_requests": 20, "signals": signal})
    srv = serve(env)
    answers = []

    def rolled_back():
        for r in predict_all(srv.url, [row(i) for i in range(100)], threads=2):
            assert r.status_code == 200, r.text  # a broken canary never fails a request
            answers.append(r.json())
        return active_deployment(ws.store, env).strategy == "rollback"

    wait_for(rolled_back, what="the automatic rollback")
    [event] = events(ws.store, dep.id)
    assert event.action == "rolled_back" and event.decision == "roll_back"
    assert [s["signal"] for s in event.evidence["signals"] if not s["healthy"]] == list(signal)
    assert list(signal)[0] in event.reason
    if broken == "exploding":  # the canary's share was answered by the stable version instead
        assert any(a.get("fallback") == "previous" and a["model_version"] == project.v.stable for a in answers)
    wait_for(lambda: srv.client.get("/metadata").json()["deployment"]["strategy"] == "rollback", what="the new plan")
    after = [r.json() for r in predict_all(srv.url, [row(i) for i in range(300)])]
    assert {(a["arm"], a["model_version"]) for a in after} == {("live", project.v.stable)}
    decisions = srv.client.get("/health").json()["control"]["decisions"]
    assert [d["decision"] for d in decisions] == ["roll_back"]


def test_deployments_started_with_tether_deploy_are_served_and_promoted_by_tether_serve(project, tether_cli,
                                                                                        serve_cli, ws):
    """End to end through both commands: blue-green for the first version, then a canary
    that the server's analysis promotes step by step."""
    import json

    from tether.plugins.rollout.state import active_deployment, events

    def deploy(*args):
        result = tether_cli("deploy", *args, "-w", str(project.workspace), "--json")
        assert result.exit_code == 0, result
        out = json.loads(result.stdout)
        return out.get("data", out)

    first = deploy("start", project.v.stable, "-s", "blue_green", "--env", "e2e")
    deploy("promote", first["id"], "--reason", "first version")
    url = serve_cli("e2e", "--log-inputs", "none")
    assert httpx.post(f"{url}/predict", json=row(1)).json()["model_version"] == project.v.stable
    canary = deploy("start", project.v.candidate, "-s", "canary", "--env", "e2e", "-p", "sticky_key=customer_id",
                    "-p", "steps=[50, 100]", "-p", "analysis.interval=0.3", "-p", "analysis.min_requests=20",
                    "-p", "analysis.signals={error_rate: {}, latency_p95: {max_ratio: 3, min_delta_ms: 200}}")
    assert (canary["stable_version_id"], canary["weight"]) == (project.v.stable, 50.0)
    served = []

    def promoted():
        served.extend(r.json()["model_version"] for r in predict_all(url, [row(i) for i in range(100)], threads=2))
        return active_deployment(ws.store, "e2e").state == "promoted"

    wait_for(promoted, what="the canary to be promoted by the server")
    assert {project.v.stable, project.v.candidate} <= set(served)
    [event] = events(ws.store, canary["id"])
    assert event.action == "promoted" and {s["signal"] for s in event.evidence["signals"]} == {"error_rate",
                                                                                              "latency_p95"}
    wait_for(lambda: {r.json()["model_version"] for r in predict_all(url, [row(i) for i in range(50)])}
             == {project.v.candidate}, what="every request on the promoted version")


# --- shadow and blue-green ----------------------------------------------------------------


def test_shadow_outputs_are_logged_and_never_returned(project, ws, serve):
    from tether.plugins.bundles import load_bundle

    start_deployment(ws, environment="shadow", strategy="shadow", version=project.v.candidate,
                     stable=project.v.stable, rollback_target=project.v.stable)
    srv = serve("shadow", log_inputs="none")
    rows = [row(i) for i in range(200)]
    answers = [r.json() for r in predict_all(srv.url, rows)]
    stable, candidate = load_bundle(ws, project.v.stable), load_bundle(ws, project.v.candidate)
    expected, shadow = stable.predict(rows)["score"].tolist(), candidate.predict(rows)["score"].tolist()
    assert expected != shadow  # the two versions answer differently
    assert [a["score"] for a in answers] == pytest.approx(expected)
    assert {(a["arm"], a["model_version"]) for a in answers} == {("stable", project.v.stable)}
    srv.server.router.drain_mirror()
    log = log_table(srv).to_pylist()
    mirrored = [e for e in log if e["arm"] == "shadow"]
    assert {e["model_version"] for e in mirrored} == {project.v.candidate}
    assert {e["request_id"] for e in mirrored} == {a["request_id"] for a in answers}
    by_request = {e["request_id"]: e["score"] for e in mirrored}
    assert [by_request[a["request_id"]] for a in answers] == pytest.approx(shadow)


def test_a_blue_green_switch_under_concurrent_load_loses_no_request(project, ws, serve):
    from tether.plugins.rollout.state import advance

    dep = start_deployment(ws, environment="bluegreen", strategy="blue_green", version=project.v.candidate,
                           stable=project.v.stable, state="pending", rollback_target=project.v.stable,
                           analysis={"warmup_requests": 10, "keep_warm": 600})
    srv = serve("bluegreen")
    meta = srv.client.get("/metadata").json()
    assert set(meta["versions"]) == {project.v.stable, project.v.candidate}  # both loaded before the switch
    stop = threading.Event()
    seen: list[list] = [[] for _ in range(4)]

    def hammer(i):
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                response = client.post("/predict", json=row(i * 100_000 + n))
                body = response.json()
                seen[i].append((response.status_code, body.get("model_version"), body.get("request_id")))
                n += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(len(s) >= 20 for s in seen), what="traffic on blue")
        advance(ws.store, dep, "promote", {"checked": "green answered its smoke requests"})
        wait_for(lambda: all(s and s[-1][1] == project.v.candidate for s in seen), what="every client on green")
        wait_for(lambda: all(sum(a[1] == project.v.candidate for a in s) >= 20 for s in seen), what="traffic on green")
    finally:
        stop.set()
        for t in threads:
            t.join()
    for answers in seen:
        assert {code for code, _, _ in answers} == {200}
        versions = [v for _, v, _ in answers]
        switch = versions.index(project.v.candidate)
        assert set(versions[:switch]) == {project.v.stable} and set(versions[switch:]) == {project.v.candidate}
    after = srv.client.get("/metadata").json()["versions"]
    assert (after[project.v.stable]["arm"], after[project.v.stable]["answers"]) == ("blue", False)  # kept warm
    assert (after[project.v.candidate]["arm"], after[project.v.candidate]["answers"]) == ("green", True)
    srv.server.router.drain_mirror()
    on_blue = {rid for answers in seen for _, v, rid in answers if v == project.v.stable}
    warmup = [e for e in log_table(srv).to_pylist() if e["arm"] == "green" and e["request_id"] in on_blue]
    assert len(warmup) == 10 and {e["status"] for e in warmup} == {"ok"}  # green checked on copies first


@pytest.mark.parametrize("mode", ["previous", "rule", "recommend_only", "none"])
def test_each_fallback_mode_answers_for_a_version_that_raises(project, ws, serve, mode):
    fallback = {"mode": mode, "rule": "serve_helpers:no_churn_rule" if mode == "rule" else None}
    start_deployment(ws, environment=f"fallback-{mode}", strategy="canary", version=project.v.exploding,
                     stable=project.v.stable, weight=50, steps=(50, 100), rollback_target=project.v.stable,
                     analysis=NO_DECISION, fallback=fallback)
    srv = serve(f"fallback-{mode}")
    rows = [row(i) for i in range(60)]
    responses = predict_all(srv.url, rows, threads=2)
    failed = [(r, a) for r, a in zip(rows, responses) if a.status_code != 200 or a.json()["arm"] != "stable"]
    assert 10 < len(failed) < 50  # the keys routed to the broken canary
    for request, response in failed:
        body = response.json()
        if mode == "none":
            assert response.status_code == 500 and "model exploded" in body["error"] and body["request_id"]
            continue
        assert response.status_code == 200 and body["fallback"] == mode
        if mode == "rule":
            assert body["prediction"] == int(request["contract"] == "month-to-month")
            assert (body["arm"], body["model_version"]) == ("fallback", None)
        else:
            assert (body["arm"], body["model_version"]) == ("fallback", project.v.stable)
            assert body.get("recommend_only", False) is (mode == "recommend_only")
    assert srv.client.get("/health").json()["arms"]["canary"]["errors"] == len(failed)
    if mode != "none":
        logged = [e for e in log_table(srv).to_pylist() if e["status"] == "fallback"]
        assert len(logged) == len(failed) and all("model exploded" in e["error"] for e in logged)
    assert srv.client.post("/predict", params={"version": project.v.stable}, json=row(0)).status_code == 200


def test_blue_green_releases_the_old_version_after_keep_warm(project, ws, serve):
    start_deployment(ws, environment="cooled", strategy="blue_green", version=project.v.candidate,
                     stable=project.v.stable, state="promoted", weight=100, rollback_target=project.v.stable,
                     analysis={"warmup_requests": 0, "keep_warm": 0.5})
    srv = serve("cooled")
    wait_for(lambda: list(srv.client.get("/metadata").json()["versions"]) == [project.v.candidate],
             what="blue to be released")
    answer = srv.client.post("/predict", json=row(1)).json()
    assert (answer["arm"], answer["model_version"]) == ("green", project.v.candidate)


# --- bad input ------------------------------------------------------------------------------


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(project, ws, serve):
    start_deployment(ws, environment="bad-input", strategy="canary", version=project.v.candidate,
                     stable=project.v.stable, weight=50, steps=(50, 100), rollback_target=project.v.stable,
                     analysis=NO_DECISION)
    srv = serve("bad-input")
    post = srv.client.post
    missing = {k: v for k, v in row(1).items() if k != "contract"}
    response = post("/predict", json=missing, headers={"X-Request-ID": "req-missing-1"})
    assert response.status_code == 422
    assert response.json()["field"] == "contract" and "contract" in response.json()["error"]
    assert response.headers["x-request-id"] == response.json()["request_id"] == "req-missing-1"
    wrong = post("/predict", json={**row(2), "tenure_months": "twelve"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "tenure_months"
    in_batch = post("/predict", json=[row(3), {**row(4), "monthly_charges": None, "contract": 7}])
    assert in_batch.status_code == 422 and in_batch.json()["field"] == "contract"
    malformed = post("/predict", content=b'{"tenure_months": 3,', headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert post("/predict", json="hello").status_code == 422
    assert post("/predict", json=[]).status_code == 422
    unknown = post("/predict", params={"version": "mv-churn-99"}, json=row(5))
    assert unknown.status_code == 404 and "mv-churn-99" in unknown.json()["error"]
    assert post("/predict", headers={"X-Request-ID": "bad id with spaces"}, json=row(6)).headers[
        "x-request-id"] != "bad id with spaces"
    pinned = post("/predict", params={"version": project.v.stable}, json=row(7)).json()
    assert (pinned["arm"], pinned["model_version"]) == ("stable", project.v.stable)
    ok = post("/predict", json=row(8), headers={"X-Request-ID": "after-the-errors"})
    assert ok.status_code == 200 and ok.json()["request_id"] == "after-the-errors"
    assert srv.client.get("/health").json()["status"] == "ok"


def test_a_rollback_with_no_previous_version_is_reported_and_serving_goes_on(project, ws, serve):
    from tether.plugins.rollout.state import active_deployment

    start_deployment(ws, environment="no-previous", strategy="canary", version=project.v.exploding,
                     stable=project.v.stable, weight=50, steps=(50, 100), rollback_target=None,
                     analysis={"interval": 60, "min_requests": 10, "signals": {"error_rate": {}}})
    srv = serve("no-previous")

    def reported():
        assert {r.status_code for r in predict_all(srv.url, [row(i) for i in range(40)], threads=2)} == {200}
        return srv.client.get("/health").json()["control"]["decisions"]

    [decision] = wait_for(reported, what="the failed rollback to be reported")
    assert decision["decision"] == "roll_back" and not decision["recorded"]
    assert "no previous version to roll back to" in decision["error"]
    assert active_deployment(ws.store, "no-previous").state == "active"  # nothing half-done
    assert srv.client.post("/predict", json=row(1)).status_code == 200


def test_a_bundle_whose_hash_does_not_match_is_refused_and_the_last_good_version_keeps_serving(project, tmp_path):
    import os
    import shutil

    from tether.contrib.serve.server import Server, ServeSettings
    from tether.manager import PluginHost
    from tether.plugins.bundles import build_bundle
    from tether.workspace import Workspace

    shutil.copytree(project.workspace, tmp_path / ".tether")  # this test damages its own copy
    host = PluginHost(entry_points=False)
    with Workspace.open(host, tmp_path / ".tether") as copy:
        start_deployment(copy, environment="prod", strategy="batch", version=project.v.stable, state="completed")
        bundle = build_bundle(copy, project.v.candidate)
        model = next(a for a in bundle.artifacts if a.role == "model")
        path = tmp_path / ".tether" / "objects" / model.ref.key
        os.chmod(path, 0o644)
        path.write_bytes(path.read_bytes()[:-8] + b"tampered")
        server = Server(host, ServeSettings(workspace=str(tmp_path / ".tether"), environment="prod", port=0,
                                            reload_interval=0.1)).start()
        try:
            with httpx.Client(base_url=server.url) as client:
                wait_for(lambda: client.get("/health").status_code == 200, what="the first deployment")
                start_deployment(copy, environment="prod", strategy="blue_green", version=project.v.candidate,
                                 stable=project.v.stable, state="promoted", weight=100)
                error = wait_for(lambda: client.get("/health").json()["control"]["error"], what="the refusal")
                assert "cannot be served: IntegrityError" in error and project.v.candidate in error
                answer = client.post("/predict", json=row(1))
                assert answer.status_code == 200 and answer.json()["model_version"] == project.v.stable
        finally:
            server.stop()


def test_nothing_deployed_is_503_and_a_deployment_is_picked_up_without_a_restart(project, ws, serve):
    from tether.contrib.serve.server import Server, ServeSettings
    from tether.manager import PluginHost

    server = Server(PluginHost(entry_points=False), ServeSettings(workspace=str(project.workspace),
                    environment="later", port=0, reload_interval=0.1)).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/health").status_code == 503
            response = client.post("/predict", json=row(1))
            assert response.status_code == 503 and "later" in response.json()["error"]
            start_deployment(ws, environment="later", strategy="batch", version=project.v.stable, state="completed")
            wait_for(lambda: client.get("/health").status_code == 200, what="the deployment to be loaded")
            assert client.post("/predict", json=row(1)).json()["model_version"] == project.v.stable
    finally:
        server.stop()


# --- the prediction log -------------------------------------------------------------------


def test_the_prediction_log_is_a_window_tether_monitor_reads(project, ws, serve, tether_cli):
    import json

    start_deployment(ws, environment="logged", strategy="batch", version=project.v.stable, state="completed")
    srv = serve("logged", log_inputs="full", roll_rows=150)
    rows = data_rows(400)
    answers = [r.json() for r in predict_all(srv.url, rows)]
    table = log_table(srv)
    folder = srv.server.settings.log_folder
    assert table.num_rows == 400 and len(list(folder.glob("*.parquet"))) >= 3  # rolled by size
    assert not list(folder.glob(".*"))  # no temporary file left behind
    for column in ("timestamp", "request_id", "model_version", "arm", "strategy", "latency_ms", "input_sha256",
                   "prediction", "score", "tenure_months", "contract"):
        assert column in table.column_names, column
    assert sorted(table.column("request_id").to_pylist()) == sorted(a["request_id"] for a in answers)
    result = tether_cli("monitor", str(folder), "--reference", "churn-inputs", "--time-column", "timestamp",
                        "-w", str(project.workspace), "--json", "--fail-on", "never")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)["data"]
    results = {r["column"]: r for r in report["results"]}
    assert {"tenure_months", "monthly_charges", "contract"} <= set(results)
    assert results["tenure_months"]["n_current"] == 400  # every logged request, as logged
    assert str(folder) in report["current_id"]


@pytest.mark.parametrize("mode", ["hash", "none"])
def test_the_log_keeps_only_a_hash_or_nothing_of_the_inputs_when_asked(project, ws, serve, mode):
    from tether.contrib.serve.predlog import input_digest

    start_deployment(ws, environment=f"private-{mode}", strategy="batch", version=project.v.stable,
                     state="completed")
    srv = serve(f"private-{mode}", log_inputs=mode)
    rows = [row(i) for i in range(20)]
    answers = [r.json() for r in predict_all(srv.url, rows, threads=1)]
    table = log_table(srv)
    assert not {"tenure_months", "monthly_charges", "contract", "customer_id"} & set(table.column_names)
    digests = dict(zip(table.column("request_id").to_pylist(), table.column("input_sha256").to_pylist()))
    expected = [input_digest(r) if mode == "hash" else None for r in rows]
    assert [digests[a["request_id"]] for a in answers] == expected


def test_the_input_drift_reference_defaults_to_the_profile_of_the_training_snapshot(project, ws, host):
    from tether.contrib.serve.analysis import AnalysisContext
    from tether.records import Deployment

    dep = Deployment(id="deploy-x", model_version_id=project.v.candidate, target="canary", status="active")
    reference = AnalysisContext(backends=host.backends, workspace=ws, deployment=dep).reference()
    assert {"tenure_months", "monthly_charges", "contract"} <= set(reference.columns)
    assert reference.label.startswith("churn-inputs v")  # the stored profile save_reference wrote
