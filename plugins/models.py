"""Evaluate, register and deploy: evaluators with gates, the workspace registry, batch scoring.

The stage hooks call only the contracts of ``tether.backends`` (``evaluate``,
``register``, ``deploy``), so any evaluator, registry or deployer plugin can stand in.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether import hookimpl
from tether.backends import Deployer, Evaluator, Registry
from tether.errors import DataError, StageError
from tether.names import check_name
from tether.records import Deployment, Evaluation, Finding, ModelVersion, new_id


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
                    message=f"{metric} fell from {baseline[metric]:.4f} to {metrics[metric]:.4f} (allowed drop {allowed})",
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
        return {"roc_auc": float(m.roc_auc_score(y, proba)), "average_precision": float(m.average_precision_score(y, proba)),
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


@hookimpl(trylast=True)
def tether_evaluate(model, features, stage, context):
    return context.backend(stage).evaluate(model, features, context=context)


@attrs.frozen(kw_only=True)
class WorkspaceRegistry(Registry):
    """Model versions in the workspace's metadata store, numbered 1, 2, 3... per name."""

    name: ClassVar[str] = "default"
    model_name: str = attrs.field(validator=lambda _, a, v: check_name(v, a.name, what="model name"))
    description: str = ""
    require_passed: bool = True

    def register(self, model, evaluation, *, context) -> ModelVersion:
        if evaluation is not None and not evaluation.passed and self.require_passed:
            reasons = "; ".join(f.message for f in evaluation.findings if f.severity == "error")
            raise StageError(f"model {model.id} did not pass evaluation {evaluation.id}: {reasons}")
        features = context.store.get(model.feature_set_id) if model.feature_set_id else None

        def build(version: int) -> ModelVersion:
            return ModelVersion(id=f"mv-{self.model_name}-{version}", name=self.model_name, version=version,
                                model_id=model.id, evaluation_id=evaluation.id if evaluation else None,
                                feature_set_id=model.feature_set_id,
                                snapshot_id=features.snapshot_id if features else None,
                                metrics=dict(evaluation.metrics) if evaluation else {},
                                description=self.description)

        parents = [(model.id, "model")] + ([(evaluation.id, "evaluation")] if evaluation else [])
        # The version row is written here, in one transaction with its number; the runner's
        # later put of the same id is a no-op.
        return context.store.put_versioned(build, kind="model_version", name=self.model_name, parents=parents,
                                           run_id=context.run.id if context.run else None)


@hookimpl(trylast=True)
def tether_register(model, evaluation, stage, context):
    return context.backend(stage).register(model, evaluation, context=context)


@attrs.frozen(kw_only=True)
class BatchDeployer(Deployer):
    """Score a snapshot with the model version and its fitted transform; write predictions."""

    name: ClassVar[str] = "batch"
    output: str = "predictions"
    keep_columns: tuple[str, ...] = ()

    def deploy(self, model_version, snapshot, *, context) -> Deployment:
        import os
        import tempfile

        import pandas as pd

        if snapshot is None:
            raise DataError("batch deploy needs a snapshot to score; add a snapshot stage before it")
        model = context.get(model_version.model_id, kind="model")
        features = context.get(model_version.feature_set_id, kind="features")
        transform = context.workspace.load_object(features.transform, what=f"transform of {features.id}")
        estimator = context.workspace.load_model(model)
        frame = context.workspace.read_snapshot(snapshot)
        columns = list(transform.feature_names_in_)
        missing = [c for c in columns if c not in frame]
        if missing:
            raise DataError(f"snapshot {snapshot.id} lacks the model's input columns {missing}")
        X = pd.DataFrame(transform.transform(frame[columns]), columns=list(features.feature_names))
        out = frame[[c for c in (*snapshot.key_columns, *self.keep_columns,
                                 *([snapshot.time_column] if snapshot.time_column else [])) if c in frame]].copy()
        if hasattr(estimator, "predict_proba"):
            out["score"] = estimator.predict_proba(X)[:, 1]
        out["prediction"] = estimator.predict(X)
        out["model_version"] = model_version.id
        ref = context.workspace.put_frame(out)
        deployment_id = new_id("deploy")
        folder = context.resolve_path(self.output)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{deployment_id}.parquet"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(context.storage.read_bytes(ref))
        os.replace(tmp, target)
        return Deployment(id=deployment_id, model_version_id=model_version.id, target=self.name, status="completed",
                          outputs=(ref,), location=str(target),
                          details={"rows": len(out), "snapshot_id": snapshot.id,
                                   "positive_rate": float(out["prediction"].mean())})


@hookimpl(trylast=True)
def tether_deploy(model_version, snapshot, stage, context):
    return context.backend(stage).deploy(model_version, snapshot, context=context)


@hookimpl
def tether_add_backends(backends):
    for cls in (ClassificationEvaluator, RegressionEvaluator, WorkspaceRegistry, BatchDeployer):
        backends.add(cls)
