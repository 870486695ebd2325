"""The ``bundle`` record: a content-addressed package of one model version.

A bundle names its artifacts (the fitted model and transform) by digest, says how each
is serialized (``skops`` with the exact types it needs trusted, or ``pickle``) and holds
the input/output schema, the package versions it was built with and the model card.
Its ``digest`` is the SHA-256 of the canonical JSON of all of that, and its ``id`` is
derived from the digest, so a record edited after it was written (another artifact, a
longer trusted-type list) is refused before any artifact is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import attrs
from tether.records import ObjectRef, record, utcnow

#: fields that are not part of the bundle's content (the digest covers all the others)
UNHASHED = ("id", "digest", "created_at")


@attrs.frozen(kw_only=True)
class Artifact:
    """One serialized object of a bundle (``role`` is ``model`` or ``transform``)."""

    role: str
    ref: ObjectRef
    format: str  # skops | pickle
    cls: str  # module.Class of the object
    trusted: tuple[str, ...] = ()  # skops: the types the file holds beyond skops' defaults


@record("bundle")
class Bundle:
    """A verified, content-addressed package of a model version (see docs/deploy.md)."""

    id: str
    name: str  # the model version id: bundles are found by it
    model_version_id: str
    digest: str  # "sha256:<hex>" of the content (every field but id, digest, created_at)
    artifacts: tuple[Artifact, ...]
    schema: dict[str, Any]
    feature_names: tuple[str, ...] = ()
    requirements: dict[str, str] = attrs.field(factory=dict)
    card: dict[str, Any] = attrs.field(factory=dict)
    evaluation_id: str | None = None
    feature_set_id: str | None = None
    snapshot_id: str | None = None
    created_at: dt.datetime = attrs.field(factory=utcnow)

    def artifact(self, role: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.role == role), None)


def content_digest(bundle: Bundle) -> str:
    """The SHA-256 of the bundle's content as canonical JSON."""
    from tether import serde

    data = {k: v for k, v in serde.converter.unstructure(bundle).items() if k not in UNHASHED}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def id_for(digest: str) -> str:
    return "bundle-" + digest.split(":", 1)[1][:16]


def seal(bundle: Bundle) -> Bundle:
    """``bundle`` with its digest and the id derived from it."""
    digest = content_digest(bundle)
    return attrs.evolve(bundle, digest=digest, id=id_for(digest))


def check_sealed(bundle: Bundle) -> None:
    """Raise ``IntegrityError`` unless the bundle's content still matches its digest and id."""
    from tether.errors import IntegrityError

    digest = content_digest(bundle)
    if digest != bundle.digest or bundle.id != id_for(bundle.digest):
        raise IntegrityError(f"bundle {bundle.id} does not match its recorded hash: the record was altered; "
                             "refusing to load any of its artifacts")
