"""The featurize stage: the built-in ``sklearn`` featurizer, user transforms, fitting on
the training split only, and the feature set linked to its definitions.

The stage (:func:`featurize`) uses only the ``Featurizer`` contract of
:mod:`tether.backends` (``build()``, ``input_columns``, ``label_column``, the declarations
``catalogue``, ``validate`` and ``fail_on_findings``, and ``name``), so any featurizer
backend can stand in for :class:`SklearnFeaturizer`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
from tether.backends import Featurizer
from tether.callables import import_callable
from tether.errors import ConfigError, DataError, NotFoundError, StageError
from tether.records import FeatureSet, Finding

from .catalogue import (
    PY_CALLABLE,
    FeatureDefinition,
    apply_definitions,
    latest_definition,
    load_catalogue,
)


class UserTransform:
    """A user transform (``fit``/``transform``) bound to its input columns.

    Gives batch scoring and serving the same interface as the built-in transform:
    ``feature_names_in_``, ``transform(frame)`` and ``get_feature_names_out()`` (the
    inner object's names, or none; the stage then names the outputs ``f0``, ``f1``, ...).
    """

    def __init__(self, inner: Any, columns: Sequence[str]) -> None:
        self.inner = inner
        self.columns = list(columns)

    def fit(self, X, y=None):
        import numpy as np

        self.inner.fit(X[self.columns])
        self.feature_names_in_ = np.array(self.columns, dtype=object)
        return self

    def transform(self, X):
        import numpy as np

        out = self.inner.transform(X[self.columns])
        return out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)

    def get_feature_names_out(self, input_features=None):
        names = getattr(self.inner, "get_feature_names_out", None)
        return [str(n) for n in names()] if callable(names) else []


# --- Parameter checks (attrs validators: they run when the chain is validated, and the
# chain's error names ``stages[i].params.<key>``) ---------------------------------------------


def _check_columns(inst, attribute, value) -> None:
    """Input columns: non-empty names, each listed once (across ``numeric`` and ``categorical``)."""
    earlier = list(inst.numeric) if attribute.name == "categorical" else []
    seen: list[str] = []
    for i, name in enumerate(value):
        key = f"{attribute.name}[{i}]"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a column name must be a non-empty string, got {name!r}", key=key)
        if name in seen or name in earlier:
            where = attribute.name if name in seen else "numeric"
            raise ConfigError(f"'{name}' is listed twice (also in {where}); list each input column once", key=key)
        seen.append(name)


def _check_label(inst, attribute, value) -> None:
    """The label: a non-empty name that is not also an input (the model would be given the answer)."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a column name must be a non-empty string, got {value!r}", key=attribute.name)
    for field in ("numeric", "categorical", "columns"):
        names = list(getattr(inst, field))
        if value in names:
            raise ConfigError(f"'{value}' is the label (params.label); a model given its label as a feature scores "
                              f"perfectly on every split and is useless: remove it from {field}",
                              key=f"{field}[{names.index(value)}]")


def _check_path(inst, attribute, value) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"expected a file path, got {value!r} (omit it for no catalogue)", key=attribute.name)


@attrs.frozen(kw_only=True)
class SklearnFeaturizer(Featurizer):
    """Impute + scale numeric columns, impute + one-hot encode categorical ones; or the
    user transform ``transform: "module:factory"`` (a factory returning an unfitted object
    with ``fit``/``transform``) over ``columns``.

    ``catalogue`` (a YAML file, relative to the chain) is applied to the metadata store and,
    with the definitions already stored, validates the input columns; ``fail_on_findings``
    makes an ``error`` finding fail the stage.
    """

    name: ClassVar[str] = "sklearn"
    numeric: tuple[str, ...] = attrs.field(default=(), validator=_check_columns)
    categorical: tuple[str, ...] = attrs.field(default=(), validator=_check_columns)
    label: str | None = attrs.field(default=None, validator=_check_label)
    transform: str | None = None
    columns: tuple[str, ...] = attrs.field(default=(), validator=_check_columns)
    catalogue: str | None = attrs.field(default=None, validator=_check_path)
    validate: bool = True
    fail_on_findings: bool = True

    def build(self):
        if self.transform:
            return self._user_transform()
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        parts = []
        if self.numeric:
            parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(self.numeric)))
        if self.categorical:
            parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                               OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                          list(self.categorical)))
        if not parts:
            raise ConfigError("featurize.params: name the input columns in numeric/categorical, "
                              "or give transform: 'module:factory' with columns")
        return ColumnTransformer(parts, verbose_feature_names_out=False)

    def _user_transform(self) -> UserTransform:
        where = "featurize.params.transform"
        if not PY_CALLABLE.match(self.transform):
            raise ConfigError(f"{where}: expected 'module:factory', got {self.transform!r}")
        inner = import_callable(self.transform, where=where)()
        if not (callable(getattr(inner, "fit", None)) and callable(getattr(inner, "transform", None))):
            raise ConfigError(f"{where}: {self.transform}() returned {type(inner).__name__}, "
                              "which has no fit/transform methods")
        _refuse_fitted(inner, self.transform)
        return UserTransform(inner, self.columns)

    def preflight(self, *, context) -> None:
        """Before the run: the catalogue must be valid, and so must ``policy.skew_gate``."""
        from .skew_gate import preflight_skew_gate

        if self.catalogue:
            load_catalogue(context.resolve_path(self.catalogue))
        preflight_skew_gate(context)

    @property
    def input_columns(self) -> list[str]:
        if self.transform:
            if not self.columns:
                raise ConfigError("featurize.params.columns: a user transform needs its input columns listed")
            return list(self.columns)
        return [*self.numeric, *self.categorical]

    @property
    def label_column(self) -> str | None:
        return self.label

    def check_numeric(self, frame) -> None:
        """``DataError`` naming a ``numeric`` column whose values are not numbers."""
        import pandas as pd

        if self.transform:
            return
        for i, name in enumerate(self.numeric):
            if name in frame and not (pd.api.types.is_numeric_dtype(frame[name])
                                      or pd.api.types.is_bool_dtype(frame[name])):
                raise DataError(f"featurize: params.numeric[{i}]: column '{name}' holds {frame[name].dtype} "
                                "values, not numbers; list it under categorical")


def _refuse_fitted(transform: Any, where: str) -> None:
    """A transform fitted before the stage could have seen every row: refuse it."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - sklearn is a core dependency
        return
    if isinstance(transform, BaseEstimator):
        try:
            check_is_fitted(transform)
        except (NotFittedError, TypeError):
            return
        raise ConfigError(f"featurize.params.transform: {where}() returned an already fitted "
                          f"{type(transform).__name__}; return it unfitted: tether fits it on the training split only")


# --- The stage ------------------------------------------------------------------------------


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's whole message on one line (library messages continue on the next
    line after "...data:"), cut at ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit_transform_splits(featurizer: Featurizer, frame, splits):
    """Fit on the rows labelled ``train`` only; transform every split.

    This is the only place the stage fits anything, and it is handed the training rows
    alone; there is no parameter that widens the rows used for fitting.
    """
    import numpy as np

    columns = featurizer.input_columns
    label = featurizer.label_column
    missing = [c for c in columns + ([label] if label else []) if c not in frame]
    if missing:
        raise DataError(f"featurize: columns {missing} are not in the snapshot")
    splits = np.asarray(splits)
    if len(splits) != len(frame):
        raise DataError(f"featurize: the split assigns {len(splits)} rows but the snapshot has {len(frame)}")
    train = frame[splits == "train"]
    if train.empty:
        raise DataError("featurize: the split has no training rows")
    if isinstance(featurizer, SklearnFeaturizer):
        featurizer.check_numeric(frame)
    transform = featurizer.build()
    try:
        transform = transform.fit(train[columns]) or transform
    except Exception as exc:  # noqa: BLE001 - any failure of the transform is reported as the stage's
        raise StageError(f"featurize: fitting the transform on the training split failed: "
                         f"{type(exc).__name__}: {one_line(exc)}") from None
    matrices, names = {}, None
    for split_name in ("train", "validation", "test"):
        part = frame[splits == split_name]
        if not part.empty:
            matrices[split_name], names = _transform_split(transform, part, columns, label, split_name, names)
    return transform, names, matrices


def _transform_split(transform, part, columns: list[str], label: str | None, split_name: str,
                     names: list[str] | None):
    """One split's feature matrix (plus the label column) and the output names."""
    import numpy as np
    import pandas as pd

    try:
        values = np.asarray(transform.transform(part[columns]))
    except Exception as exc:  # noqa: BLE001 - any failure of the transform is reported as the stage's
        raise StageError(f"featurize: transforming the {split_name} split failed: "
                         f"{type(exc).__name__}: {one_line(exc)}") from None
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if names is None:
        names = [str(n) for n in transform.get_feature_names_out()]
        if len(names) != values.shape[1]:  # none, or not one per output column
            names = [f"f{i}" for i in range(values.shape[1])]
    out = pd.DataFrame(values, columns=names)
    if label:
        out[label] = part[label].to_numpy()
    return out, names


def featurize(featurizer: Featurizer, snapshot, split, context) -> FeatureSet:
    """The built-in featurize stage: definitions, validation, train-only fit, stored feature set."""
    run_id = context.run.id if context.run else None
    definitions: list[FeatureDefinition] = []
    if featurizer.catalogue:
        loaded = load_catalogue(context.resolve_path(featurizer.catalogue))
        definitions = [d for d, _ in apply_definitions(context.store, loaded, run_id=run_id)]
    frame = context.workspace.read_snapshot(snapshot)
    columns = featurizer.input_columns
    used = _input_definitions(context.store, definitions, columns)
    findings = _validate(featurizer, frame, used)
    assignment = context.workspace.read_frame(split.assignment, columns=["split"])["split"].to_numpy()
    transform, names, matrices = fit_transform_splits(featurizer, frame, assignment)
    transform_ref = context.workspace.put_object(transform)
    inner = transform.inner if isinstance(transform, UserTransform) else transform
    matrix_refs = {name: context.workspace.put_frame(matrix) for name, matrix in matrices.items()}
    feature_set = FeatureSet(
        id=FeatureSet.id_for(snapshot_id=snapshot.id, split_id=split.id, transform=transform_ref, matrices=matrix_refs),
        snapshot_id=snapshot.id, split_id=split.id,
        featurizer=featurizer.name, params=json.loads(json.dumps(attrs.asdict(featurizer))), transform=transform_ref,
        feature_names=tuple(names), label=featurizer.label_column, findings=tuple(findings),
        matrices=matrix_refs,
        input_columns=tuple(columns), definition_ids=tuple(d.id for d in used),
        transform_class=f"{type(inner).__module__}.{type(inner).__qualname__}")
    # Written here with its definition edges; the runner's later put of the same id only
    # adds the snapshot/split edges.
    parents = [(d.id, "feature_definition") for d in used] + [(snapshot.id, "snapshot"), (split.id, "split")]
    context.store.put(feature_set, parents=parents, run_id=run_id)
    return feature_set


def _input_definitions(store, definitions: list[FeatureDefinition], columns: list[str]) -> list[FeatureDefinition]:
    """The definition of each input column: from the catalogue, else the latest stored one."""
    by_name = {d.name: d for d in definitions}
    for name in columns:
        if name not in by_name:
            stored = latest_definition(store, name)
            if stored is not None:
                by_name[name] = stored
    return [by_name[c] for c in columns if c in by_name]


def _validate(featurizer: Featurizer, frame, used: list[FeatureDefinition]) -> list[Finding]:
    """The validation findings; the first error fails the stage with ``fail_on_findings``."""
    from .validation import validate_features

    findings = validate_features(frame, used) if featurizer.validate else []
    errors = [f for f in findings if f.severity == "error"]
    if errors and featurizer.fail_on_findings:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise StageError(f"featurize: {errors[0].message}{more}; set fail_on_findings: false to record them only")
    return findings


def load_transform(workspace, model_version_id: str):
    """The fitted transform a model version was trained with: what batch scoring and an
    online serving process both load (the same content-addressed artifact, digest-checked)."""
    mv = workspace.store.get(model_version_id, kind="model_version")
    if mv is None:
        raise NotFoundError(f"no model version '{model_version_id}' in {workspace.root}")
    if not mv.feature_set_id:
        raise NotFoundError(f"model version '{model_version_id}' has no feature set")
    features = workspace.store.get(mv.feature_set_id, kind="features")
    if features is None:
        raise NotFoundError(f"feature set '{mv.feature_set_id}' of '{model_version_id}' is not in {workspace.root}")
    return workspace.load_transform(features)
