"""Router overhead of ``tether serve`` per request, against calling the model in-process
and against a hand-written Starlette endpoint that calls the same model.

A small scikit-learn model (the churn example's logistic regression on two numeric and
one categorical input) is registered twice and deployed as a 20% canary with sticky keys
and the prediction log on (hashed inputs). Measured, in interleaved rounds:

* ``in-process model``: ``bundle.predict([row])``, what a user would otherwise call;
* ``in-process router``: ``Router.predict([row])`` on the same bundles (arm choice, the
  model call, the arm windows, the log entry). The router's overhead per request is paired:
  each request's router time minus the time of the model call inside it;
* ``router alone``: the same router on a model that returns a prepared answer at once,
  so only routing, windows and the log entry are timed;
* ``HTTP bare``: a minimal Starlette app on uvicorn calling ``bundle.predict`` (what a
  user would hand-write), in a subprocess, one keep-alive httpx client;
* ``HTTP tether serve``: the real server (``tether serve``) in a subprocess, same client.

Then requests/s of both servers with ``--clients`` concurrent keep-alive clients.

Run: ``python benchmarks/bench_router.py [--requests 2000] [--rounds 3] [--clients 4]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import attrs
import conditions  # benchmarks/conditions.py: load average and peak memory

REPO = Path(__file__).resolve().parents[1]
CHAIN = """\
version: 1
name: bench
stages:
  - stage: snapshot
    plugin: python
    params: {function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {rows: 2000}}
  - stage: split
    plugin: time
    params: {time_column: event_ts}
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}
  - {step: "churn.train:fit", params: {C: CVALUE}}
  - stage: register
    params: {model_name: churn}
"""


def row(i: int) -> dict:
    return {"customer_id": f"C{i:06d}", "tenure_months": 1 + i % 60, "monthly_charges": 20.0 + (i * 7) % 90,
            "contract": ("month-to-month", "one-year", "two-year")[i % 3]}


def build(root: Path) -> tuple[str, str]:
    """A workspace with two registered versions and a 20% canary of the second."""
    from tether.config import load_chain
    from tether.manager import PluginHost
    from tether.plugins.rollout.state import record_start
    from tether.records import Deployment, new_id
    from tether.runner import run_chain
    from tether.workspace import Workspace

    shutil.copytree(REPO / "examples" / "churn" / "churn", root / "churn")
    sys.path.insert(0, str(root))
    host = PluginHost(entry_points=False)
    versions = []
    for c in ("1.0", "0.5"):
        path = root / f"chain-{c}.yaml"
        path.write_text(CHAIN.replace("CVALUE", c))
        versions.append(run_chain(load_chain(path, host), host)[1]["register"].id)
    with Workspace.open(host, root / ".tether") as ws:
        record_start(ws.store, Deployment(
            id=new_id("deploy"), model_version_id=versions[1], target="canary", status="active", environment="bench",
            strategy="canary", state="active", steps=(20.0, 100.0), weight=20.0, stable_version_id=versions[0],
            rollback_target=versions[0], sticky_key="customer_id",
            analysis={"interval": 1e9, "min_requests": 10**9}), parents=[])
    return versions[0], versions[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.percentile(samples, 50)) * 1000, float(np.percentile(samples, 99)) * 1000


def timed(fn, rows) -> list[float]:
    out = []
    for r in rows:
        started = time.perf_counter()
        fn(r)
        out.append(time.perf_counter() - started)
    return out


class Instant:
    """A model that answers at once (isolates the router's own work)."""

    def __init__(self, bundle) -> None:
        self.answer = bundle.predict([row(0)])

    def predict(self, rows):
        return self.answer


class Timed:
    """A bundle that remembers how long its last ``predict`` took (to pair the overhead)."""

    def __init__(self, bundle) -> None:
        self.bundle, self.last = bundle, 0.0

    def predict(self, rows):
        started = time.perf_counter()
        try:
            return self.bundle.predict(rows)
        finally:
            self.last = time.perf_counter() - started


def serve_bare(workspace: str, version: str, port: int) -> None:
    """The hand-written alternative: Starlette + uvicorn calling the bundle directly."""
    import json

    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from tether.manager import PluginHost
    from tether.plugins.bundles import load_bundle
    from tether.workspace import Workspace

    bundle = load_bundle(Workspace.open(PluginHost(entry_points=False), workspace), version)

    async def predict(request):
        body = json.loads(await request.body())
        frame = await run_in_threadpool(bundle.predict, [body])
        return JSONResponse({k: (v.item() if hasattr(v, "item") else v) for k, v in frame.iloc[0].items()})

    uvicorn.run(Starlette(routes=[Route("/predict", predict, methods=["POST"])]), host="127.0.0.1", port=port,
                log_level="warning", access_log=False, lifespan="off")


def start(args: list[str], port: int, env: dict) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"http://127.0.0.1:{port}/predict", json=row(0), timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


def throughput(url: str, clients: int, requests: int) -> float:
    import httpx

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(requests // clients):
                client.post("/predict", json=row(k * 1_000_000 + i)).raise_for_status()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (requests // clients * clients) / (time.perf_counter() - started)


def in_process(root: Path, workspace: str):
    """The router a server runs, with its models timed, and one on instant models."""
    from tether.contrib.serve.control import Controller
    from tether.contrib.serve.predlog import PredictionLog
    from tether.contrib.serve.routing import Router
    from tether.manager import PluginHost

    log = PredictionLog(root / "log-inproc", log_inputs="hash").start()
    router = Router(environment="bench", log=log)
    controller = Controller(host=PluginHost(entry_points=False), workspace=workspace, environment="bench",
                            router=router, reload_interval=3600).start()
    models = dict(router.table.models)
    timed_models = {v: Timed(m) for v, m in models.items()}
    router.table = attrs.evolve(router.table, models=timed_models)  # same plan, models timed
    instant = Router(environment="bench", log=log)
    instant.swap(attrs.evolve(router.table, models={v: Instant(m) for v, m in models.items()}))

    def close() -> None:
        controller.stop()
        router.close()
        instant.close()
        log.close()

    return router, instant, models, timed_models, close


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--serve-bare", nargs=3, metavar=("WORKSPACE", "VERSION", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare[0], args.serve_bare[1], int(args.serve_bare[2]))
        return
    import httpx

    root = Path(tempfile.mkdtemp(prefix="bench-router-"))
    stable, _candidate = build(root)
    workspace = str(root / ".tether")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    bare_port, serve_port = free_port(), free_port()
    bare = start([__file__, "--serve-bare", workspace, stable, str(bare_port)], bare_port, env)
    served = start(["-m", "tether", "serve", "-w", workspace, "-e", "bench", "--port", str(serve_port),
                    "--log-dir", str(root / "log-http")], serve_port, env)
    router, instant, models, timed_models, close = in_process(root, workspace)
    series: dict[str, list[float]] = {k: [] for k in ("model", "router", "overhead", "alone", "bare", "serve")}

    def routed(x) -> None:
        started = time.perf_counter()
        [answer] = router.predict([x], request_id="bench")
        series["overhead"].append(time.perf_counter() - started - timed_models[answer["model_version"]].last)

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{bare_port}") as b, \
                httpx.Client(base_url=f"http://127.0.0.1:{serve_port}") as s:
            for r in range(args.rounds):  # interleaved: each round measures every variant
                rows = [row(r * 10_000_000 + i) for i in range(args.requests)]
                series["model"] += timed(lambda x: models[stable].predict([x]), rows)
                series["router"] += timed(routed, rows)
                series["alone"] += timed(lambda x: instant.predict([x], request_id="bench"), rows)
                series["bare"] += timed(lambda x: b.post("/predict", json=x).raise_for_status(), rows)
                series["serve"] += timed(lambda x: s.post("/predict", json=x).raise_for_status(), rows)
        rps_bare = throughput(f"http://127.0.0.1:{bare_port}", args.clients, args.requests)
        rps_serve = throughput(f"http://127.0.0.1:{serve_port}", args.clients, args.requests)
    finally:
        for proc in (bare, served):
            proc.terminate()
            proc.wait(30)
        close()
        shutil.rmtree(root, ignore_errors=True)
    report(series, rps_bare, rps_serve, args)


def report(series, rps_bare: float, rps_serve: float, args) -> None:
    p = {k: percentiles(v) for k, v in series.items()}
    print(f"{args.requests} requests x {args.rounds} interleaved rounds; {args.clients} clients for requests/s")
    print(f"{'per request':<44} {'p50 ms':>8} {'p99 ms':>8}")
    for key, label in (("model", "in-process model (bundle.predict)"), ("router", "in-process router (Router.predict)"),
                       ("bare", "HTTP, hand-written Starlette endpoint"), ("serve", "HTTP, tether serve")):
        print(f"{label:<44} {p[key][0]:>8.3f} {p[key][1]:>8.3f}")
    print(f"{'router overhead in-process (paired per request)':<44} {p['overhead'][0]:>8.3f} "
          f"{p['overhead'][1]:>8.3f}")
    print(f"{'router alone (a model answering at once)':<44} {p['alone'][0]:>8.3f} {p['alone'][1]:>8.3f}")
    print(f"{'router overhead over HTTP (serve - bare)':<44} {p['serve'][0] - p['bare'][0]:>8.3f} "
          f"{p['serve'][1] - p['bare'][1]:>8.3f}")
    print(f"{'whole HTTP path over the model (serve - model)':<44} {p['serve'][0] - p['model'][0]:>8.3f} "
          f"{p['serve'][1] - p['model'][1]:>8.3f}")
    print(f"requests/s: hand-written {rps_bare:,.0f}, tether serve {rps_serve:,.0f} "
          f"(ratio {rps_serve / rps_bare:.2f})")
    print(conditions.describe())


if __name__ == "__main__":
    main()
