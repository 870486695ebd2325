"""Shared pieces of the tracking tests: an in-memory third-party tracker and a small chain."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import attrs
from tether import hookimpl
from tether.backends import Tracker

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"

CHAIN = """\
version: 1
name: mini
TRACKERS
stages:
  - stage: snapshot
    id: customers
    plugin: python
    params: {function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {rows: 1500}}
  - stage: split
    plugin: random
    params: {seed: 11, train: 0.6, validation: 0.2, test: 0.2}
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges], categorical: [contract]}
  - {step: "epochs:fit", id: train, params: {C: 0.5, epochs: 4, random_state: 7, api_token: "tok-literal-777"}}
  - stage: evaluate
    plugin: classification
    params: {model_name: mini, min: {roc_auc: 0.5}}
  - stage: register
    params: {model_name: mini}
"""

STEP = '''\
from sklearn.linear_model import LogisticRegression


def fit(features, context, params):
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    for epoch in range(params["epochs"]):
        context.log_metrics({"loss": 1.0 / (epoch + 1), "lr": 0.1}, step=epoch)
    context.tracker.note(hypothesis="C=0.5 is enough")
    return LogisticRegression(C=params["C"], random_state=params["random_state"], max_iter=500).fit(X, y)
'''


def make_project(root: Path, trackers: str = "") -> Path:
    """A chain project in ``root`` (the churn example's data module, a step logging epochs)."""
    shutil.copytree(EXAMPLE / "churn", root / "churn", dirs_exist_ok=True)
    (root / "epochs.py").write_text(STEP)
    path = root / "chain.yaml"
    path.write_text(CHAIN.replace("TRACKERS\n", trackers))
    return path


@attrs.define(kw_only=True)
class MemoryTracker(Tracker):
    """Records every call; ``fail_in`` names a method that raises."""

    name: ClassVar[str] = "memory"
    fail_in: str = ""
    calls: list = attrs.field(factory=list, init=False)

    def _note(self, method, *args):
        self.calls.append((method, *args))
        if method == self.fail_in:
            raise ConnectionError(f"tracking server refused {method}")

    def start_run(self, run, *, context):
        self._note("start_run", run.id)

    def log_params(self, run_id, params):
        self._note("log_params", dict(params))

    def log_metrics(self, run_id, metrics, *, step=None, timestamp=None):
        self._note("log_metrics", dict(metrics), step)

    def log_artifact(self, run_id, ref, *, name):
        self._note("log_artifact", name, ref.digest)

    def set_tags(self, run_id, tags):
        self._note("set_tags", dict(tags))

    def flush(self, run_id):
        self._note("flush")

    def log_model_version(self, model_version, *, status, aliases):
        self._note("log_model_version", model_version.id, status, aliases)

    def end_run(self, run, *, status):
        self._note("end_run", status)


class MemoryTrackerPlugin:
    @hookimpl
    def tether_add_backends(self, backends):
        backends.add(MemoryTracker)
