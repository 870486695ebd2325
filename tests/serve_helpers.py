"""Helpers of the serving tests: a workspace with registered churn model versions (a
stable one, a candidate, one that raises and one that is slow), deployments started
through the rollout plugin's state API, and a real uvicorn server on a free port."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from chains import customers_split_by_time
from sklearn.linear_model import LogisticRegression

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"
NUMERIC = ["tenure_months", "monthly_charges"]
CHAIN = """\
version: 1
name: serve
stages:
""" + customers_split_by_time(1500) + """\
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}
  - {step: "STEP", params: PARAMS}
  - stage: register
    params: {model_name: churn}
"""


class Exploding(LogisticRegression):
    """A fitted logistic regression whose predictions raise (a broken release)."""

    def predict(self, X):
        raise RuntimeError("model exploded")

    def predict_proba(self, X):
        raise RuntimeError("model exploded")


class Slow(LogisticRegression):
    """A fitted logistic regression that takes 100 ms more per call (a slow release)."""

    def predict_proba(self, X):
        time.sleep(0.1)
        return super().predict_proba(X)


def no_churn_rule(frame):
    """A fallback rule: predict no churn unless the contract is month-to-month."""
    return (frame["contract"] == "month-to-month").astype(int).tolist()


def _fit(cls, features, context, params):
    train = context.workspace.read_frame(features.matrices["train"])
    model = cls(C=params.get("C", 1.0), max_iter=1000)
    return model.fit(train[list(features.feature_names)], train[features.label])


def fit_exploding(features, context, params):
    return _fit(Exploding, features, context, params)


def fit_slow(features, context, params):
    return _fit(Slow, features, context, params)


def build_project(root: Path, host) -> dict[str, str]:
    """A churn project in ``root`` with four registered versions: name -> model version id."""
    from tether.config import load_chain
    from tether.runner import run_chain

    shutil.copytree(EXAMPLE / "churn", root / "churn")
    versions = {}
    for name, step, params in (("stable", "churn.train:fit", "{C: 1.0}"), ("candidate", "churn.train:fit", "{C: 0.7}"),
                               ("exploding", "serve_helpers:fit_exploding", "{}"),
                               ("slow", "serve_helpers:fit_slow", "{C: 0.5}")):
        path = root / f"{name}.yaml"
        path.write_text(CHAIN.replace("STEP", step).replace("PARAMS", params))
        _run, outputs = run_chain(load_chain(path, host), host)
        versions[name] = outputs["register"].id
    return versions


def row(i: int) -> dict:
    """A valid request row for entity ``i``."""
    return {"customer_id": f"C{i:06d}", "tenure_months": 1 + i % 60, "monthly_charges": 20.0 + (i * 7) % 90,
            "contract": ("month-to-month", "one-year", "two-year")[i % 3]}


def data_rows(n: int, *, seed_rows: int = 1500) -> list[dict]:
    """``n`` request rows drawn from the churn data the models were trained on (so the
    inputs match the reference profile), with their entity key."""
    import sys

    sys.path.insert(0, str(EXAMPLE))
    try:
        from churn.data import customers
    finally:
        sys.path.remove(str(EXAMPLE))
    frame = customers(rows=max(n, seed_rows))
    frame = frame[["customer_id", *NUMERIC, "contract"]].head(n)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict("records")]


def save_reference(workspace, name: str = "churn-inputs"):
    """A stored reference profile of the training snapshot (the input drift signal's)."""
    from tether.plugins.monitoring.profile_store import save_profile
    from tether.plugins.monitoring.profiles import profile_batches
    from tether.plugins.monitoring.windows import stored_batches

    snap = workspace.store.find("snapshot", name="customers", limit=1)[0]
    batches = (b for ref in snap.objects for b in stored_batches(workspace, ref))
    profile = profile_batches(batches, time_column=snap.time_column, exclude=tuple(snap.key_columns))
    return save_profile(workspace, profile, name=name, snapshot_id=snap.id)


def start_deployment(workspace, *, environment: str, strategy: str, version: str, stable: str | None = None,
                     state: str = "active", weight: float = 0.0, steps=(), rollback_target: str | None = None,
                     analysis: dict | None = None, fallback: dict | None = None,
                     sticky_key: str | None = "customer_id"):
    """Store a deployment as the rollout plugin starts one (record + audit entry)."""
    from tether.plugins.rollout.state import record_start
    from tether.records import Deployment, new_id

    dep = Deployment(id=new_id("deploy"), model_version_id=version, target=strategy, status=state,
                     environment=environment, strategy=strategy, state=state, steps=tuple(steps), step=0,
                     weight=float(weight), stable_version_id=stable, rollback_target=rollback_target,
                     sticky_key=sticky_key, analysis=dict(analysis or {}), fallback=dict(fallback or {}))
    return record_start(workspace.store, dep, parents=[(version, "model_version")])


def wait_for(predicate, *, timeout: float = 120.0, every: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (not a timed assertion: the
    deadline only keeps a broken server from hanging the suite)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what}")
