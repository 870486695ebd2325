"""The evaluate stage's backends: score the trained model on a held-out split, find the
raw snapshot rows behind it (for slices, rules and error examples), re-score model-version
baselines on those rows, and hand everything to :mod:`.engine`.

``classification`` (binary or multiclass), ``regression`` and ``auto`` (the task from the
label and the model) differ only in the tasks they accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from tether.backends import Evaluator
from tether.callables import import_callable
from tether.errors import ConfigError, DataError, NotFoundError, did_you_mean
from tether.validators import one_of

from .baselines import from_outputs, model_outputs
from .engine import Rows, Subject
from .engine import evaluate as run
from .inputs import Predictions, classification, regression
from .params import EvaluateParams
from .tasks import detect_task

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Evaluation


def _load_matrix(context, features, split_name):
    ref = features.matrices.get(split_name)
    if ref is None:
        raise DataError(f"feature set {features.id} has no '{split_name}' rows to evaluate on")
    frame = context.workspace.read_frame(ref)
    if not features.label:
        raise DataError(f"feature set {features.id} has no label column; set params.label on featurize")
    return frame[list(features.feature_names)], frame[features.label]


@attrs.frozen(kw_only=True)
class StageEvaluator(EvaluateParams, Evaluator):
    """Evaluate a trained model on a held-out split (see docs/evaluation.md)."""

    name: ClassVar[str] = "auto"
    TASKS: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")

    split: str = attrs.field(default="test", validator=one_of("train", "validation", "test"),
                             metadata={"doc": "the split scored: `train`, `validation` or `test`"})
    html: str | None = attrs.field(default=None, metadata={
        "doc": "write the evaluation's HTML report here (relative to the chain file)"})

    # -- before the run ------------------------------------------------------------------

    def preflight(self, *, context) -> None:
        """Rules and predicates import; slice columns exist in the snapshot source's schema
        (file sources; other sources are checked when the stage runs, before scoring)."""
        where = f"{context.stage.where}.params" if context.stage is not None else "params"
        for name, spec in self.baselines.items():
            if spec.rule:
                import_callable(spec.rule, where=f"{where}.baselines.{name}.rule")
        for i, spec in enumerate(self.slices):
            if spec.where:
                import_callable(spec.where, where=f"{where}.slices[{i}].where")
        columns = upstream_columns(context)
        if columns is None:
            return
        for i, spec in enumerate(self.slices):
            if spec.column is not None and spec.column not in columns:
                raise ConfigError(f"{where}.slices[{i}].column: the snapshot source has no column '{spec.column}'"
                                  f"{did_you_mean(spec.column, columns)} (columns: {', '.join(columns[:12])})")

    # -- the stage -----------------------------------------------------------------------

    def predictions(self, task: str, estimator, X, y) -> Predictions:
        if task == "regression":
            return regression(y, estimator.predict(X))
        classes = getattr(estimator, "classes_", None)
        if callable(getattr(estimator, "predict_proba", None)):
            proba = estimator.predict_proba(X)
            return classification(task, y, scores=proba, classes=None if classes is None else list(classes),
                                         threshold=self.threshold)
        return classification(task, y, pred=estimator.predict(X),
                                     classes=None if classes is None else list(classes))

    def evaluate(self, model, features, *, context) -> Evaluation:
        import numpy as np

        X, y = _load_matrix(context, features, self.split)
        estimator = context.workspace.load_model(model)
        task = self.task or detect_task(y, model=estimator)
        if task not in self.TASKS:
            raise DataError(f"the {self.name} evaluator evaluates {', '.join(self.TASKS)}; this model and label are "
                            f"a {task} task (use the auto evaluator or set task)")
        p = self.predictions(task, estimator, X, y)
        snapshot = context.get(features.snapshot_id, kind="snapshot")
        split = context.get(features.split_id, kind="split")
        assignment = context.workspace.read_frame(split.assignment, columns=["split"])["split"].to_numpy()
        positions = np.flatnonzero(assignment == self.split)
        if len(positions) != p.rows:
            raise DataError(f"split {split.id} puts {len(positions):,} rows in '{self.split}' but the feature "
                            f"matrix has {p.rows:,}; featurize again")
        frame = self.raw_rows(context, snapshot, positions)
        key = snapshot.key_columns[0] if len(snapshot.key_columns) == 1 else None
        rows = Rows(frame=frame, positions=positions, ids=frame[key].to_numpy() if key in frame else None,
                    id_column=key or "", prior=self.prior(context, features, p),
                    threshold_on=self.threshold_rows(context, features, estimator, p))
        models = {name: self.rescore(context, name, spec.model, snapshot, positions, p)
                  for name, spec in self.baselines.items() if spec.model}
        if self.baseline == "latest":
            models["latest"] = self.rescore(context, "latest", self.model_name, snapshot, positions, p)
        subject = Subject(model_id=model.id, feature_set_id=features.id, split=self.split, evaluator=self.name,
                          source="stage", snapshot_id=snapshot.id, label=features.label or "")
        evaluation = run(self, p, subject=subject, rows=rows, models=models)
        if self.html:
            from .report import write_html

            lineage = {"model": model.id, "feature set": features.id, "split": split.id, "snapshot": snapshot.id,
                       **({"run": context.run.id} if context.run is not None else {})}
            write_html(context.resolve_path(self.html), evaluation, lineage)
        return evaluation

    def raw_rows(self, context, snapshot, positions):
        """The evaluated rows' raw snapshot columns: all of them when a rule reads them,
        else the slice and key columns."""
        names = list(snapshot.column_names)
        if any(s.rule for s in self.baselines.values()) or any(s.where for s in self.slices):
            wanted = names
        else:
            from .slices import check_columns

            check_columns(self.slices, names, where="params.slices")
            wanted = [c for c in dict.fromkeys([*(s.column for s in self.slices if s.column),
                                                *snapshot.key_columns]) if c in names]
        if not wanted:
            import pandas as pd

            return pd.DataFrame(index=range(len(positions)))
        frame = context.workspace.read_snapshot(snapshot, columns=wanted)
        return frame.iloc[positions].reset_index(drop=True)

    def prior(self, context, features, p: Predictions):
        """The training labels, encoded like the evaluated ones: what the dummy learns."""
        ref = features.matrices.get("train")
        if ref is None or not features.label:
            return None
        y = context.workspace.read_frame(ref, columns=[features.label])[features.label]
        if p.task == "regression":
            return y.to_numpy(dtype=float)
        import pandas as pd

        codes = pd.Index(list(p.classes)).get_indexer(y)
        return codes[codes >= 0].astype("int64")

    def threshold_rows(self, context, features, estimator, p: Predictions):
        """``(labels, scores, split)`` to choose the threshold on, or ``None``."""
        if not self.choose_threshold or p.task != "binary" or p.scores is None:
            return None
        if self.threshold_split not in features.matrices:
            return None
        X, y = _load_matrix(context, features, self.threshold_split)
        chosen = classification("binary", y, scores=estimator.predict_proba(X), classes=list(p.classes))
        return chosen.y, chosen.scores, self.threshold_split

    def rescore(self, context, name: str, ref: str, snapshot, positions, p: Predictions) -> Any:
        """``(model version id, predictions)`` of a registered version on the same raw rows,
        or why it could not be scored."""
        import pandas as pd

        try:
            mv = context.workspace.resolve(ref, kind="model_version")
        except NotFoundError as exc:
            return f"{ref}: {exc}"
        model = context.get(mv.model_id, kind="model")
        features = context.get(mv.feature_set_id, kind="features")
        transform = context.workspace.load_transform(features)
        estimator = context.workspace.load_model(model)
        columns = [str(c) for c in getattr(transform, "feature_names_in_", features.input_columns)]
        missing = [c for c in columns if c not in snapshot.column_names]
        if missing:
            return f"{mv.id} needs columns the snapshot lacks: {', '.join(missing[:5])}"
        frame = context.workspace.read_snapshot(snapshot, columns=columns).iloc[positions]
        X = pd.DataFrame(transform.transform(frame[columns]), columns=list(features.feature_names))
        output = model_outputs(estimator, X, p)
        return mv.id, from_outputs(p, output, f"baseline '{name}' ({mv.id})", threshold=self.threshold)


@attrs.frozen(kw_only=True)
class ClassificationEvaluator(StageEvaluator):
    name: ClassVar[str] = "classification"
    TASKS: ClassVar[tuple[str, ...]] = ("binary", "multiclass")


@attrs.frozen(kw_only=True)
class RegressionEvaluator(StageEvaluator):
    name: ClassVar[str] = "regression"
    TASKS: ClassVar[tuple[str, ...]] = ("regression",)


def upstream_columns(context) -> list[str] | None:
    """The columns of the snapshot behind the evaluate stage's feature set, when its source
    is a file whose schema can be read without reading it; else ``None``."""
    chain, stage = context.chain, context.stage
    if chain is None or stage is None:
        return None
    featurize = _producer(chain, stage, "features")
    snapshot_stage = _producer(chain, featurize, "snapshot") if featurize is not None else None
    if snapshot_stage is None or snapshot_stage.stage != "snapshot":
        return None
    source = context.backend(snapshot_stage)
    if source.name not in ("csv", "parquet"):
        return None
    path = context.resolve_path(source.path)
    try:
        if source.name == "parquet":
            import pyarrow.dataset as ds

            return list(ds.dataset(path, format="parquet", partitioning="hive").schema.names)
        import pyarrow.csv as pacsv

        return list(pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=source.delimiter)).schema.names)
    except Exception:  # noqa: BLE001 - an unreadable file fails at its own stage, with its own message
        return None


def _producer(chain, stage, kind: str):
    """The stage that produces ``stage``'s input of ``kind``: the one its ``inputs`` name,
    else the nearest earlier stage producing that kind."""
    argument = {"features": "features", "snapshot": "snapshot"}[kind]
    if argument in stage.inputs:
        return next((s for s in chain.stages if s.id == stage.inputs[argument]), None)
    earlier = [s for s in chain.stages[: stage.index] if s.output_kind == kind]
    return earlier[-1] if earlier else None
