"""The built-in deployer: batch scoring of a snapshot, predictions written as Parquet."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
from tether.backends import Deployer
from tether.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Deployment


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
        from tether.records import Deployment, new_id

        if snapshot is None:
            raise DataError("batch deploy needs a snapshot to score; add a snapshot stage before it")
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
