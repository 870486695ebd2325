"""The built-in registry: model versions in the workspace's metadata store."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
from tether.backends import Registry
from tether.errors import StageError
from tether.names import check_name

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import ModelVersion


@attrs.frozen(kw_only=True)
class WorkspaceRegistry(Registry):
    """Model versions in the workspace's metadata store, numbered 1, 2, 3... per name.

    Registering the model that is already the latest version (same content-derived model
    id) returns that version instead of adding an identical one."""

    name: ClassVar[str] = "default"
    model_name: str = attrs.field(validator=lambda _, a, v: check_name(v, a.name, what="model name"))
    description: str = ""
    require_passed: bool = True

    def register(self, model, evaluation, *, context) -> ModelVersion:
        from tether.records import ModelVersion

        if evaluation is not None and not evaluation.passed and self.require_passed:
            reasons = "; ".join(f.message for f in evaluation.findings if f.severity == "error")
            raise StageError(f"model {model.id} did not pass evaluation {evaluation.id}: {reasons}")
        latest = context.store.find("model_version", name=self.model_name, limit=1)
        if latest and latest[0].model_id == model.id:
            return latest[0]  # the identical model is already the latest version: no new version
        features = context.store.get(model.feature_set_id) if model.feature_set_id else None

        def build(version: int) -> ModelVersion:
            return ModelVersion(id=f"mv-{self.model_name}-{version}", name=self.model_name, version=version,
                                model_id=model.id, evaluation_id=evaluation.id if evaluation else None,
                                feature_set_id=model.feature_set_id,
                                snapshot_id=features.snapshot_id if features else None,
                                metrics=dict(evaluation.metrics) if evaluation else {},
                                description=self.description)

        parents = [(model.id, "model")] + ([(evaluation.id, "evaluation")] if evaluation else [])
        # The version row is written here, in one transaction with its number (and the check
        # that the latest version is another model, so concurrent registrations add one);
        # the runner's later put of the same id is a no-op.
        return context.store.put_versioned(build, kind="model_version", name=self.model_name, parents=parents,
                                           run_id=context.run.id if context.run else None,
                                           unchanged=lambda latest: latest.model_id == model.id)
