"""Helpers of the registry tests: distinct models, evaluations, a policy file, a fixed clock."""

from __future__ import annotations

import datetime as dt

from tether.records import Evaluation

UTC = dt.timezone.utc


def estimator(c: float = 1.0):
    """A small unfitted estimator; each ``c`` pickles to different bytes (another model)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c)


def evaluation(store, name: str, *, passed: bool):
    record = Evaluation(id=f"eval-{name}", model_id="model-x", feature_set_id="feat-x", split="test",
                        evaluator="classification", metrics={"roc_auc": 0.8 if passed else 0.4}, passed=passed)
    store.put(record)
    return record


def write_policy(workspace, text: str) -> None:
    workspace.root.mkdir(parents=True, exist_ok=True)
    (workspace.root / "policy.yaml").write_text(text)


class Clock:
    """A clock the registry, the records and the audit log read (``now``), moved by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(microseconds=1)
        return self.now

    def set(self, text: str) -> None:
        self.now = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def fixed_clock(monkeypatch, start: str = "2026-03-01T09:00") -> Clock:
    clock = Clock(dt.datetime.fromisoformat(start).replace(tzinfo=UTC))
    import tether.plugins.registry.state as state
    import tether.records as records

    monkeypatch.setattr(records, "utcnow", clock)
    monkeypatch.setattr(state, "utcnow", clock)
    return clock
