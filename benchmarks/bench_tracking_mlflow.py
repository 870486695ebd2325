"""Tracking and registry against MLflow, both on SQLite on the same file system.

Measured, each in a fresh process, rounds interleaved (tether, MLflow, tether, ...):

* one-call logging: 2,000 values of one metric at steps 0..1999, one call each
  (``run.log_metric`` vs ``mlflow.log_metric``), until the run has ended (so everything
  is written);
* batched logging: 2,000 metric values in one run in as few calls as each allows
  (``run.log_metrics`` with 2,000 keys vs ``MlflowClient.log_batch``, 1,000 per call);
* registration: 50 versions of one model, metadata only (tether's
  ``register_version``, with its audit entries, vs ``MlflowClient.create_model_version``);
* ``import tether`` vs ``import mlflow``.

Setup (creating the store, the experiment and the run; MLflow's first schema migration)
is outside the timed part. Each process reports its peak resident memory.

MLflow runs in its own virtual environment, ``benchmarks/.venv-mlflow`` (created with
``pip install mlflow`` on first use): the full ``mlflow`` package pins ``pyarrow<26``,
which would downgrade the project environment's pyarrow. Pass ``--mlflow-python`` to
use another interpreter that has ``mlflow``.

Run: ``python benchmarks/bench_tracking_mlflow.py [--metrics 2000] [--versions 50] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conditions  # benchmarks/conditions.py: load average and peak memory

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_TRACKING_URI": "",
         "PYTHONWARNINGS": "ignore"}


# --- workers: each runs in its own process and prints {"seconds": ..., "peak_mib": ...} ---------------


def _tether_one_call(folder: Path, n: int) -> float:
    import tether

    run = tether.start_run(name="bench", workspace=folder / "ws")
    start = time.perf_counter()
    for step in range(n):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    run.end()
    return time.perf_counter() - start


def _tether_batched(folder: Path, n: int) -> float:
    import tether

    run = tether.start_run(name="bench", workspace=folder / "ws")
    values = {f"m{i}": float(i) for i in range(n)}
    start = time.perf_counter()
    run.log_metrics(values, step=0)
    run.end()
    return time.perf_counter() - start


def _tether_versions(folder: Path, n: int) -> float:
    from tether.manager import PluginHost
    from tether.plugins.registry.registry import register_version
    from tether.records import ObjectRef, TrainedModel
    from tether.workspace import Workspace

    ws = Workspace.open(PluginHost(), folder / "ws")
    ws.store.find("model_version")  # opens (creates) the store
    models = []
    for i in range(n):
        ref = ObjectRef(key=f"m/{i}.pkl", digest="blake3:" + f"{i:016x}" + "0" * 48, size=1)
        models.append(TrainedModel(id=TrainedModel.id_for(ref), artifact=ref, framework="sklearn", estimator="X"))
    start = time.perf_counter()
    for model in models:
        register_version(ws.store, name="churn", model=model)
    elapsed = time.perf_counter() - start
    assert len(ws.store.find("model_version", name="churn")) == n
    ws.close()
    return elapsed


def _mlflow_run(folder: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    return mlflow, mlflow.start_run()


def _mlflow_one_call(folder: Path, n: int) -> float:
    mlflow, _ = _mlflow_run(folder)
    start = time.perf_counter()
    for step in range(n):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.end_run()
    return time.perf_counter() - start


def _mlflow_batched(folder: Path, n: int) -> float:
    from mlflow.entities import Metric

    mlflow, run = _mlflow_run(folder)
    client = mlflow.MlflowClient()
    stamp = int(time.time() * 1000)
    metrics = [Metric(f"m{i}", float(i), stamp, 0) for i in range(n)]
    start = time.perf_counter()
    for first in range(0, n, 1000):  # MLflow takes at most 1,000 metrics per call
        client.log_batch(run.info.run_id, metrics=metrics[first:first + 1000])
    mlflow.end_run()
    return time.perf_counter() - start


def _mlflow_versions(folder: Path, n: int) -> float:
    mlflow, run = _mlflow_run(folder)
    client = mlflow.MlflowClient()
    client.create_registered_model("churn")
    start = time.perf_counter()
    for i in range(n):
        client.create_model_version("churn", source=f"file:///models/{i}", run_id=run.info.run_id)
    elapsed = time.perf_counter() - start
    mlflow.end_run()
    return elapsed


def _import(module: str) -> float:
    start = time.perf_counter()
    __import__(module)
    return time.perf_counter() - start


WORKERS = {"tether-one": _tether_one_call, "tether-batch": _tether_batched, "tether-versions": _tether_versions,
           "mlflow-one": _mlflow_one_call, "mlflow-batch": _mlflow_batched, "mlflow-versions": _mlflow_versions}


def worker(name: str, folder: str, n: int) -> None:
    if name.startswith("import-"):
        seconds = _import(name.split("-", 1)[1])
    else:
        seconds = WORKERS[name](Path(folder), n)
    print(json.dumps({"seconds": seconds, "peak_mib": conditions.peak_rss_mib()}))


# --- the driver ------------------------------------------------------------------------------------------


def mlflow_python(given: str | None) -> str:
    """The interpreter that runs MLflow: given, or the benchmark's own venv (made on first use)."""
    if given:
        return given
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MLFLOW_VENV} with mlflow (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow"], check=True)
    return str(python)


def measure(python: str, name: str, n: int, root: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=name + "-", dir=root))
    env = {**os.environ, **QUIET}
    done = subprocess.run([python, __file__, "--worker", name, "--dir", str(folder), "--n", str(n)],
                          capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


CASES = [("one-call logging", "one", "metrics"), ("batched logging", "batch", "metrics"),
         ("register versions", "versions", "versions"), ("import", "import", None)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mlflow-python", default=None)
    parser.add_argument("--worker", default=None)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--n", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.dir, args.n)
        return
    pythons = {"tether": sys.executable, "mlflow": mlflow_python(args.mlflow_python)}
    sizes = {"metrics": args.metrics, "versions": args.versions, None: 0}
    results: dict[tuple[str, str], list[dict]] = {}
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for _, case, size in CASES:
                for tool in ("tether", "mlflow"):
                    name = f"import-{tool}" if case == "import" else f"{tool}-{case}"
                    results.setdefault((case, tool), []).append(measure(pythons[tool], name, sizes[size], Path(tmp)))
    print(f"tracking and registry vs MLflow (SQLite, same file system); median of {args.rounds} interleaved rounds, "
          "each in a fresh process")
    print(f"{'case':<34} {'tether':>10} {'mlflow':>10} {'ratio':>8} {'peak MiB t/m':>14}")
    for label, case, size in CASES:
        what = f"{label} ({sizes[size]:,})" if size else label
        tether_s = statistics.median(r["seconds"] for r in results[(case, "tether")])
        mlflow_s = statistics.median(r["seconds"] for r in results[(case, "mlflow")])
        peaks = [max(r["peak_mib"] for r in results[(case, tool)]) for tool in ("tether", "mlflow")]
        print(f"{what:<34} {tether_s * 1000:>8.1f}ms {mlflow_s * 1000:>8.1f}ms {mlflow_s / tether_s:>7.1f}x "
              f"{peaks[0]:>6.0f}/{peaks[1]:<6.0f}")
    print(f"load average (1 min) at the start of each round: {', '.join(f'{x:.2f}' for x in loads)}")
    print(conditions.describe(), "(driver process)")


if __name__ == "__main__":
    main()
