"""Loading a bundle: verify, then deserialize, then validate and predict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from tether.errors import NotFoundError
from tether.log import get_logger

from .artifacts import deserialize, read_verified
from .record import Bundle, check_sealed
from .schema import check_unseen, validate

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from tether.workspace import Workspace


@attrs.define(kw_only=True)
class LoadedBundle:
    """A verified bundle with its model and transform in memory.

    ``predict`` validates its input first; ``validate`` raises ``SchemaError`` naming the
    field. ``unseen`` is the default policy for categories never seen in training.
    """

    record: Bundle
    model: Any
    transform: Any = None
    unseen: str = "error"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def model_version_id(self) -> str:
        return self.record.model_version_id

    @property
    def schema(self) -> dict[str, Any]:
        return self.record.schema

    @property
    def requirements(self) -> dict[str, str]:
        return self.record.requirements

    @property
    def card(self) -> dict[str, Any]:
        return self.record.card

    @property
    def input_names(self) -> list[str]:
        return [f["name"] for f in self.record.schema["inputs"]]

    def validate(self, rows: Any, *, unseen: str | None = None) -> pd.DataFrame:
        """The model's input columns of ``rows`` (a mapping, a list of mappings or a
        DataFrame), typed as in training; raises ``SchemaError`` naming the field."""
        policy = check_unseen(unseen or self.unseen)
        return validate(rows, self.record.schema["inputs"], unseen=policy)

    def features(self, inputs: pd.DataFrame) -> Any:
        """The transformed feature matrix of validated ``inputs``."""
        import pandas as pd

        if self.transform is None:
            return inputs
        values = self.transform.transform(inputs)
        names = list(self.record.feature_names) or None
        return pd.DataFrame(values, columns=names, index=inputs.index)

    def predict(self, rows: Any, *, unseen: str | None = None) -> pd.DataFrame:
        """``prediction`` (and ``score`` for a classifier: the positive class's probability
        for two classes, the top probability otherwise) for each row, in order."""
        import pandas as pd

        matrix = self.features(self.validate(rows, unseen=unseen))
        out = pd.DataFrame(index=range(len(matrix)))
        if any(o["name"] == "score" for o in self.record.schema["outputs"]):
            proba = self.model.predict_proba(matrix)
            out["score"] = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        out["prediction"] = self.model.predict(matrix)
        return out


def find_bundle(workspace: Workspace, ref: Any, *, build: bool = True) -> Bundle:
    """The bundle ``ref`` names: a ``Bundle``, a bundle id, or a model version (record or
    reference; with ``build``, one without a bundle gets one built)."""
    if isinstance(ref, Bundle):
        return ref
    if isinstance(ref, str) and ref.startswith("bundle-"):
        found = workspace.store.get(ref, kind="bundle")
        if found is None:
            raise NotFoundError(f"no bundle '{ref}' in {workspace.root}")
        return found
    from .build import build_bundle, resolve_version

    mv = resolve_version(workspace, ref)
    existing = workspace.store.find("bundle", name=mv.id, limit=1)
    if existing:
        return existing[0]
    if not build:
        raise NotFoundError(f"model version {mv.id} has no bundle yet; build one with `tether deploy start` or "
                            "tether.plugins.bundles.build_bundle")
    return build_bundle(workspace, mv)


def load_bundle(workspace: Workspace, ref: Any, *, build: bool = True, unseen: str = "error") -> LoadedBundle:
    """Load a bundle: its record is checked against its hash, every artifact's bytes against
    its digest, and only then is anything deserialized (skops with the recorded trusted
    types; pickle only where the bundle says so). Package versions differing from the
    ones it was built with are logged."""
    check_unseen(unseen)
    record = find_bundle(workspace, ref, build=build)
    check_sealed(record)
    verified = [(a, read_verified(workspace, a, bundle_id=record.id)) for a in record.artifacts]
    objects = {a.role: deserialize(a, data, bundle_id=record.id) for a, data in verified}
    del verified
    if "model" not in objects:
        from tether.errors import IntegrityError

        raise IntegrityError(f"bundle {record.id} holds no model")
    _warn_on_versions(record)
    return LoadedBundle(record=record, model=objects["model"], transform=objects.get("transform"), unseen=unseen)


def _warn_on_versions(record: Bundle) -> None:
    from .build import requirements

    now = requirements()
    changed = {k: (v, now.get(k)) for k, v in record.requirements.items() if k != "python" and now.get(k) != v}
    if changed:
        get_logger("tether.bundles").warning(
            "bundle built with other package versions", bundle=record.id,
            changed={k: f"{was} -> {is_}" for k, (was, is_) in changed.items()})
