"""The featurize stage: a transform fitted on the training split only, applied to every split."""

from __future__ import annotations

from typing import ClassVar

import attrs

from tether import hookimpl
from tether.backends import Featurizer
from tether.errors import DataError
from tether.records import FeatureSet


@attrs.frozen(kw_only=True)
class SklearnFeaturizer(Featurizer):
    """Impute + scale numeric columns, impute + one-hot encode categorical ones."""

    name: ClassVar[str] = "sklearn"
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    label: str | None = None

    def build(self):
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
        return ColumnTransformer(parts, verbose_feature_names_out=False)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def fit_transform_splits(featurizer, frame, splits):
    """Fit on the rows labelled ``train`` only; transform every split."""
    import pandas as pd

    missing = [c for c in featurizer.columns + ([featurizer.label] if featurizer.label else []) if c not in frame]
    if missing:
        raise DataError(f"featurize: columns {missing} are not in the snapshot")
    train = frame[splits == "train"]
    if train.empty:
        raise DataError("featurize: the split has no training rows")
    transform = featurizer.build().fit(train[featurizer.columns])
    names = [str(n) for n in transform.get_feature_names_out()]
    matrices = {}
    for split_name in ("train", "validation", "test"):
        part = frame[splits == split_name]
        if part.empty:
            continue
        out = pd.DataFrame(transform.transform(part[featurizer.columns]), columns=names)
        if featurizer.label:
            out[featurizer.label] = part[featurizer.label].to_numpy()
        matrices[split_name] = out
    return transform, names, matrices


@hookimpl(trylast=True)
def tether_featurize(snapshot, split, stage, context):
    featurizer = context.backend(stage)
    frame = context.workspace.read_snapshot(snapshot)
    assignment = context.workspace.read_frame(split.assignment, columns=["split"])["split"].to_numpy()
    transform, names, matrices = fit_transform_splits(featurizer, frame, assignment)
    transform_ref = context.workspace.put_object(transform)
    refs = {name: context.workspace.put_frame(matrix) for name, matrix in matrices.items()}
    return FeatureSet(id="feat-" + transform_ref.digest.split(":")[1][:16], snapshot_id=snapshot.id,
                      split_id=split.id, featurizer=featurizer.name, params=attrs.asdict(featurizer),
                      transform=transform_ref, feature_names=tuple(names), matrices=refs, label=featurizer.label)


@hookimpl
def tether_add_backends(backends):
    backends.add(SklearnFeaturizer)
