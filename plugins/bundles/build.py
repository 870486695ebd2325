"""Building a bundle from a registered model version (see :mod:`.record`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import DataError, NotFoundError

from .artifacts import class_name, save
from .record import Bundle, seal
from .schema import arrow_kind, infer_inputs

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from tether.records import DatasetSnapshot, FeatureSet, ModelVersion
    from tether.workspace import Workspace

#: the packages whose versions a bundle records (loading compares them with the installed ones)
PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "pyarrow", "tether")


def resolve_version(workspace: Workspace, ref: Any) -> ModelVersion:
    """The model version ``ref`` names: a record, an id, ``NAME@N``, ``NAME@alias``..."""
    from tether.records import ModelVersion

    if isinstance(ref, ModelVersion):
        return ref
    return workspace.resolve(ref, kind="model_version", hint="tether models ls")


def requirements() -> dict[str, str]:
    """The Python version and the installed versions of :data:`PACKAGES`."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def build_bundle(workspace: Workspace, model_version: Any, *, allow_pickle: bool = True) -> Bundle:
    """The bundle of ``model_version`` (a record or a reference such as ``churn@champion``),
    built and stored on first use: the model and its fitted transform (each verified
    against its record before it is read) re-serialized with skops, the schema, the
    package versions and the model card. A version that already has one returns it."""
    mv = resolve_version(workspace, model_version)
    store = workspace.store
    existing = store.find("bundle", name=mv.id, limit=1)
    if existing:
        return existing[0]
    model = store.get(mv.model_id, kind="model")
    if model is None:
        raise NotFoundError(f"model version {mv.id}: its model {mv.model_id} is not in {workspace.root}")
    estimator = workspace.load_model(model)
    features_id = mv.feature_set_id or model.feature_set_id
    features = store.get(features_id, kind="features") if features_id else None
    transform = workspace.load_transform(features) if features is not None else None
    snapshot = store.get(features.snapshot_id, kind="snapshot") if features is not None else None
    columns = _input_columns(features, transform, estimator, mv)
    types = {c.name: c.type for c in snapshot.columns} if snapshot is not None else {}
    strings = [c for c in columns if arrow_kind(types.get(c, "double")) == "string"]
    train = _training_values(workspace, features, snapshot, strings)
    schema = {"inputs": infer_inputs(columns, types, train), "outputs": _outputs(estimator)}
    artifacts = [save(workspace, estimator, role="model", allow_pickle=allow_pickle)]
    if transform is not None:
        artifacts.append(save(workspace, transform, role="transform", allow_pickle=allow_pickle))
    bundle = seal(Bundle(
        id="", name=mv.id, model_version_id=mv.id, digest="", artifacts=tuple(artifacts), schema=schema,
        feature_names=tuple(features.feature_names) if features is not None else (),
        requirements=requirements(), card=_card(workspace, mv, model, estimator),
        evaluation_id=mv.evaluation_id, feature_set_id=features_id,
        snapshot_id=mv.snapshot_id or (features.snapshot_id if features is not None else None),
    ))
    parents = [(mv.id, "model_version"), (model.id, "model")]
    if features is not None:
        parents.append((features.id, "features"))
    store.put(bundle, parents=parents)
    return bundle


def _input_columns(features: FeatureSet | None, transform: Any, estimator: Any, mv: ModelVersion) -> list[str]:
    if features is not None and features.input_columns:
        return list(features.input_columns)
    for obj in (transform, estimator):
        names = getattr(obj, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
    raise DataError(f"model version {mv.id}: cannot tell the model's input columns (its feature set records none "
                    "and the fitted objects have no feature_names_in_)")


def _training_values(workspace: Workspace, features: FeatureSet | None, snapshot: DatasetSnapshot | None,
                     columns: list[str]) -> pd.DataFrame | None:
    """The training rows' values of ``columns`` (the categories a bundle accepts)."""
    if not columns or snapshot is None or features is None:
        return None
    frame = workspace.read_snapshot(snapshot, columns=columns)
    split = workspace.store.get(features.split_id, kind="split")
    if split is not None:
        assignment = workspace.read_frame(split.assignment, columns=["split"])
        if len(assignment) == len(frame):
            frame = frame[assignment["split"].to_numpy() == "train"]
    return frame


def _outputs(estimator: Any) -> list[dict[str, str]]:
    classes = getattr(estimator, "classes_", None)
    kind = "number"
    if classes is not None:
        dtype = getattr(classes, "dtype", None)
        kind = {"i": "integer", "u": "integer", "f": "number", "b": "boolean"}.get(getattr(dtype, "kind", ""), "string")
    outputs = [{"name": "prediction", "type": kind}]
    if classes is not None and hasattr(estimator, "predict_proba"):
        outputs.append({"name": "score", "type": "number"})
    return outputs


def _card(workspace: Workspace, mv: ModelVersion, model: Any, estimator: Any) -> dict[str, Any]:
    """The model card fields of the version, with a reference to its evaluation."""
    card: dict[str, Any] = {
        "name": mv.name, "version": mv.version, "description": mv.description,
        "metrics": dict(mv.metrics), "estimator": class_name(estimator), "framework": model.framework,
    }
    for field in ("intended_use", "owner", "license", "code_version"):
        card[field] = getattr(mv, field, "") or ""
    card["limitations"] = list(getattr(mv, "limitations", ()) or ())
    evaluation = workspace.store.get(mv.evaluation_id, kind="evaluation") if mv.evaluation_id else None
    if evaluation is not None:
        card["evaluation"] = {"id": evaluation.id, "split": evaluation.split, "passed": evaluation.passed,
                              "metrics": dict(evaluation.metrics)}
    return card
