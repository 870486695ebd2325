"""The built-in deployer: batch scoring of a snapshot, predictions written as Parquet."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
from tether.backends import Deployer
from tether.errors import ConfigError, DataError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Deployment

#: the columns the deployer writes next to the kept ones
OUTPUT_COLUMNS = ("score", "prediction", "model_version")


def _check_keep_columns(inst, attribute, value) -> None:
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a column name must be a non-empty string, got {name!r}", key=f"{attribute.name}[{i}]")
        if name in OUTPUT_COLUMNS:
            raise ConfigError(f"'{name}' is a column the deployer writes ({', '.join(OUTPUT_COLUMNS)}); it cannot "
                              "be kept from the snapshot", key=f"{attribute.name}[{i}]")


@attrs.frozen(kw_only=True)
class BatchDeployer(Deployer):
    """Score a snapshot with the model version and its fitted transform; write predictions
    with the snapshot's key columns, ``keep_columns`` and time column (each once)."""

    name: ClassVar[str] = "batch"
    output: str = "predictions"
    keep_columns: tuple[str, ...] = attrs.field(default=(), validator=_check_keep_columns)

    def kept_columns(self, snapshot) -> list[str]:
        """Key, ``keep_columns`` and time columns of ``snapshot``, each once; a kept column the
        snapshot lacks is a ``DataError`` naming it (raised before anything is scored)."""
        names = snapshot.column_names
        for i, column in enumerate(self.keep_columns):
            if column not in names:
                raise DataError(f"params.keep_columns[{i}]: the snapshot {snapshot.id} ({snapshot.name}) has no "
                                f"column '{column}'{did_you_mean(column, names)}")
        wanted = (*snapshot.key_columns, *self.keep_columns, *([snapshot.time_column] if snapshot.time_column else []))
        return [c for c in dict.fromkeys(wanted) if c in names and c not in OUTPUT_COLUMNS]

    def deploy(self, model_version, snapshot, *, context) -> Deployment:
        import os
        import tempfile

        import pandas as pd
        from tether.records import Deployment, new_id

        if snapshot is None:
            raise DataError("batch deploy needs a snapshot to score; add a snapshot stage before it")
        kept = self.kept_columns(snapshot)
        model = context.get(model_version.model_id, kind="model")
        features = context.get(model_version.feature_set_id, kind="features")
        transform = context.workspace.load_transform(features)
        estimator = context.workspace.load_model(model)
        frame = context.workspace.read_snapshot(snapshot)
        columns = list(transform.feature_names_in_)
        missing = [c for c in columns if c not in frame]
        if missing:
            raise DataError(f"snapshot {snapshot.id} lacks the model's input columns {missing}")
        X = pd.DataFrame(transform.transform(frame[columns]), columns=list(features.feature_names))
        out = frame[kept].copy()
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
