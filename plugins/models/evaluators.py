"""The built-in evaluators: metrics on a held-out split, then gates (minimums, allowed
regression against the latest registered version)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
from tether.backends import Evaluator
from tether.errors import DataError
from tether.validators import one_of, within

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Evaluation, Finding


def _load_matrix(context, features, split_name):
    ref = features.matrices.get(split_name)
    if ref is None:
        raise DataError(f"feature set {features.id} has no '{split_name}' rows to evaluate on")
    frame = context.workspace.read_frame(ref)
    if not features.label:
        raise DataError(f"feature set {features.id} has no label column; set params.label on featurize")
    return frame[list(features.feature_names)], frame[features.label]


@attrs.frozen(kw_only=True)
class GatedEvaluator(Evaluator):
    """Base of the built-in evaluators: ``metrics()`` on the held-out split, then gates
    (``min`` per metric, ``max_regression`` against the latest registered version of
    ``model_name`` when ``baseline: latest``). Subclasses set ``METRICS`` and implement
    ``metrics``. A gate naming a metric the evaluator does not compute is an error when the
    chain is validated, not after training."""

    #: the metrics ``metrics()`` computes; gates may name only these
    METRICS: ClassVar[tuple[str, ...]] = ()

    split: str = attrs.field(default="test", validator=one_of("train", "validation", "test"),
                             metadata={"doc": "the split scored: `train`, `validation` or `test`"})
    baseline: str | None = attrs.field(
        default=None, validator=one_of("latest"),
        metadata={"doc": "`latest`: compare with the latest registered version of `model_name`"})
    model_name: str | None = attrs.field(default=None, metadata={"doc": "the registered model the baseline is of"})
    min: dict[str, float] = attrs.field(factory=dict, metadata={
        "doc": "metric -> lowest acceptable value; a model below any fails the stage's gate"})
    max_regression: dict[str, float] = attrs.field(factory=dict, metadata={
        "doc": "metric -> largest allowed drop against the baseline (higher-is-better metrics)"})

    def __attrs_post_init__(self) -> None:
        from tether.errors import ConfigError

        for gate in ("min", "max_regression"):
            for metric in getattr(self, gate):
                if metric not in self.METRICS:
                    raise ConfigError(f"unknown metric '{metric}' (the {self.name} evaluator computes: "
                                      f"{', '.join(self.METRICS)})", key=f"{gate}.{metric}")
        if self.baseline == "latest" and not self.model_name:
            raise ConfigError("baseline: latest needs the model_name whose latest version is the baseline",
                              key="model_name")

    def gate_summary(self) -> dict[str, dict[str, float]]:
        """``metric -> {"min": x, "max_regression": y}``: what the evaluation was gated on."""
        out: dict[str, dict[str, float]] = {}
        for gate in ("min", "max_regression"):
            for metric, value in getattr(self, gate).items():
                out.setdefault(metric, {})[gate] = value
        return out

    def gates(self, metrics: dict[str, float], baseline: dict[str, float]) -> list[Finding]:
        from tether.records import Finding

        findings = []
        for metric, floor in self.min.items():
            if metric not in metrics:
                findings.append(Finding(check="gate.min", severity="error", message=f"unknown metric '{metric}'",
                                        fix=f"use one of {sorted(metrics)}"))
            elif metrics[metric] < floor:
                findings.append(Finding(check="gate.min", severity="error",
                                        message=f"{metric} {metrics[metric]:.4f} is below the minimum {floor}",
                                        evidence={"metric": metric, "value": metrics[metric], "min": floor}))
        for metric, allowed in self.max_regression.items():
            if metric in baseline and metric in metrics and baseline[metric] - metrics[metric] > allowed:
                findings.append(Finding(
                    check="gate.regression", severity="error",
                    message=f"{metric} fell from {baseline[metric]:.4f} to {metrics[metric]:.4f} "
                            f"(allowed drop {allowed})",
                    evidence={"metric": metric, "value": metrics[metric], "baseline": baseline[metric]}))
        return findings

    def metrics(self, model, X, y) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def baseline_metrics(self, context) -> tuple[str | None, dict[str, float]]:
        """The id and metrics of the version compared against, or ``(None, {})``."""
        if self.baseline != "latest" or not self.model_name:
            return None, {}
        versions = context.store.find("model_version", name=self.model_name, limit=1)
        if not versions:
            return None, {}
        return versions[0].id, dict(versions[0].metrics)

    def evaluate(self, model, features, *, context) -> Evaluation:
        from tether.records import Evaluation, new_id

        X, y = _load_matrix(context, features, self.split)
        estimator = context.workspace.load_model(model)
        metrics = self.metrics(estimator, X, y)
        baseline_id, baseline = self.baseline_metrics(context)
        findings = self.gates(metrics, baseline)
        return Evaluation(id=new_id("eval"), model_id=model.id, feature_set_id=features.id, split=self.split,
                          evaluator=self.name, metrics=metrics,
                          passed=not any(f.severity == "error" for f in findings), gates=self.gate_summary(),
                          baseline_id=baseline_id, baseline_metrics=baseline, findings=tuple(findings))


@attrs.frozen(kw_only=True)
class ClassificationEvaluator(GatedEvaluator):
    name: ClassVar[str] = "classification"
    METRICS = ("roc_auc", "average_precision", "log_loss", "brier", "accuracy", "f1", "positive_rate", "rows")
    #: scores at or above it predict the positive class; scores are probabilities, so [0, 1]
    threshold: float = attrs.field(default=0.5, validator=within(0, 1), metadata={
        "doc": "scores at or above it predict the positive class (accuracy, f1, positive_rate)"})

    def metrics(self, model, X, y) -> dict[str, float]:
        from sklearn import metrics as m

        proba = model.predict_proba(X)[:, 1]
        pred = (proba >= self.threshold).astype(int)
        return {"roc_auc": float(m.roc_auc_score(y, proba)),
                "average_precision": float(m.average_precision_score(y, proba)),
                "log_loss": float(m.log_loss(y, proba)), "brier": float(m.brier_score_loss(y, proba)),
                "accuracy": float(m.accuracy_score(y, pred)), "f1": float(m.f1_score(y, pred)),
                "positive_rate": float(pred.mean()), "rows": float(len(y))}


@attrs.frozen(kw_only=True)
class RegressionEvaluator(GatedEvaluator):
    name: ClassVar[str] = "regression"
    METRICS = ("r2", "mae", "rmse", "rows")

    def metrics(self, model, X, y) -> dict[str, float]:
        from sklearn import metrics as m

        pred = model.predict(X)
        return {"r2": float(m.r2_score(y, pred)), "mae": float(m.mean_absolute_error(y, pred)),
                "rmse": float(m.root_mean_squared_error(y, pred)), "rows": float(len(y))}
