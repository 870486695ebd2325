"""The built-in registry: model versions in the workspace's metadata store.

:func:`register_version` is the one place a ``ModelVersion`` is written, used by the
register stage (:class:`WorkspaceRegistry`) and by :func:`.api.register_model`. The
version number is allocated in the same transaction as the write (``put_versioned``),
so concurrent registrations get distinct numbers without gaps; a version is never
rewritten (the store refuses ``replace`` for the kind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from tether.backends import Registry
from tether.errors import StageError
from tether.names import check_name

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import Evaluation, ModelVersion, TrainedModel

#: the model-card fields a registration may declare
CARD_FIELDS = ("intended_use", "limitations", "owner", "license")


def _card_text(value: Any, where: str) -> str:
    from tether.errors import ConfigError

    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {type(value).__name__}")
    return value


def check_card(card: dict[str, Any], where: str = "card") -> dict[str, Any]:
    """The model-card fields of ``card``, validated (``limitations`` is a list of texts)."""
    from tether.errors import ConfigError, reject_unknown_keys

    reject_unknown_keys(card, CARD_FIELDS, where, what="model-card field")
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key == "limitations":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ConfigError(f"{where}.limitations: expected a list of texts")
            out[key] = tuple(_card_text(v, f"{where}.limitations[{i}]") for i, v in enumerate(items))
        else:
            out[key] = _card_text(value, f"{where}.{key}")
    return out


def register_version(store: Any, *, name: str, model: TrainedModel, evaluation: Evaluation | None = None,
                     force: bool = False, run_id: str | None = None, code_version: str = "",
                     snapshot_id: str | None = None, description: str = "", card: dict[str, Any] | None = None,
                     actor: str | None = None) -> tuple[ModelVersion, bool]:
    """Register ``model`` as the next version of ``name``; ``(version, created)``.

    Unless ``force``, a model identical to the latest version (same content-derived model
    id) returns that version with ``created`` false. A new version and its audit entry
    (``model.registered``) are written in one transaction.
    """
    from tether import audit
    from tether.records import ModelVersion, utcnow

    who = actor or audit.actor()
    fields = check_card(dict(card or {}))
    made: list[ModelVersion] = []

    def build(version: int) -> ModelVersion:
        made.append(ModelVersion(
            id=f"mv-{name}-{version}", name=name, version=version, model_id=model.id,
            evaluation_id=evaluation.id if evaluation else None, feature_set_id=model.feature_set_id,
            snapshot_id=snapshot_id, metrics=dict(evaluation.metrics) if evaluation else {},
            description=description, code_version=code_version, run_id=run_id,
            registered_by=who, created_at=utcnow(), **fields))
        return made[-1]

    def registered(version: ModelVersion) -> audit.Change:
        return audit.Change(action="model.registered", subject=version.id, actor=who,
                            details={"model_id": model.id, "version": version.version, "forced": force,
                                     "evaluation_id": version.evaluation_id, "run_id": run_id})

    parents = [(model.id, "model")] + ([(evaluation.id, "evaluation")] if evaluation else [])
    version = audit.put_versioned(store, build, registered, kind="model_version", name=name, parents=parents,
                                  run_id=run_id,
                                  unchanged=None if force else (lambda latest: latest.model_id == model.id))
    return version, bool(made) and version is made[-1]


@attrs.frozen(kw_only=True)
class WorkspaceRegistry(Registry):
    """Model versions in the workspace's metadata store, numbered 1, 2, 3... per name.

    Registering the model that is already the latest version (same content-derived model
    id) returns that version instead of adding an identical one, unless ``force``. The
    model-card fields (``intended_use``, ``limitations``, ``owner``, ``license``) are
    stored on the version with the run's commit (code version) and training snapshot."""

    name: ClassVar[str] = "default"
    model_name: str = attrs.field(validator=lambda _, a, v: check_name(v, a.name, what="model name"),
                                  metadata={"doc": "the model's name: versions are mv-NAME-1, mv-NAME-2, ..."})
    description: str = attrs.field(default="", metadata={"doc": "what this version is"})
    require_passed: bool = attrs.field(default=True, metadata={
        "doc": "refuse a model whose evaluation failed (false: register it; the evaluation gate keeps it "
               "experimental)"})
    force: bool = attrs.field(default=False, metadata={
        "doc": "add a version even if the model is identical to the latest one"})
    intended_use: str = attrs.field(default="", metadata={"doc": "model card: what it is for"})
    limitations: tuple[str, ...] = attrs.field(default=(), metadata={"doc": "model card: known limitations"})
    owner: str = attrs.field(default="", metadata={"doc": "model card: the team or person responsible"})
    license: str = attrs.field(default="", metadata={"doc": "model card: the license it is used under"})

    def register(self, model, evaluation, *, context) -> ModelVersion:
        if evaluation is not None and not evaluation.passed and self.require_passed:
            reasons = "; ".join(f.message for f in evaluation.findings if f.severity == "error")
            raise StageError(f"model {model.id} did not pass evaluation {evaluation.id}: {reasons}")
        features = context.store.get(model.feature_set_id) if model.feature_set_id else None
        run = context.run
        card = {"intended_use": self.intended_use, "limitations": list(self.limitations), "owner": self.owner,
                "license": self.license}
        # The version row is written here, in one transaction with its number (and the check
        # that the latest version is another model, so concurrent registrations add one);
        # the runner's later put of the same id is a no-op.
        version, _created = register_version(
            context.store, name=self.model_name, model=model, evaluation=evaluation, force=self.force,
            run_id=run.id if run else None, code_version=(run.code or {}).get("git_commit", "") if run else "",
            snapshot_id=features.snapshot_id if features else None, description=self.description, card=card)
        return version
