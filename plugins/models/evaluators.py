"""The built-in evaluators: metrics on a held-out split, then gates (minimums, allowed
regression against the latest registered version)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
from tether.backends import Evaluator
from tether.errors import DataError

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
    ``model_name`` when ``baseline: latest``). Subclasses implement ``metrics``."""

    split: str = "test"
    baseline: str | None = None  # "latest": the latest registered version of model `model_name`
    model_name: str | None = None
    min: dict[str, float] = attrs.field(factory=dict)  # metric -> lowest acceptable value
    max_regression: dict[str, float] = attrs.field(factory=dict)  # metric -> allowed drop vs baseline

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
                          passed=not any(f.severity == "error" for f in findings),
                          baseline_id=baseline_id, baseline_metrics=baseline, findings=tuple(findings))


@attrs.frozen(kw_only=True)
class ClassificationEvaluator(GatedEvaluator):
    name: ClassVar[str] = "classification"
    threshold: float = 0.5

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

    def metrics(self, model, X, y) -> dict[str, float]:
        from sklearn import metrics as m

        pred = model.predict(X)
        return {"r2": float(m.r2_score(y, pred)), "mae": float(m.mean_absolute_error(y, pred)),
                "rmse": float(m.root_mean_squared_error(y, pred)), "rows": float(len(y))}
