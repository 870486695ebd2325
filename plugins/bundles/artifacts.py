"""Serializing a bundle's objects: skops by default, pickle only where skops cannot.

skops writes an object as a zip of a JSON schema and arrays, and loading it constructs
only the types it is told to trust. When a bundle is built, the types the file holds
beyond skops' own defaults are recorded with the artifact (``Artifact.trusted``); when
it is loaded, the file must hold no other type, and exactly the recorded ones are
trusted. An object skops cannot write, or cannot read back identically, is pickled
instead (signed with ``TETHER_SIGNING_KEY`` when set), and is unpickled only after the
bundle's record and the object's digest were verified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import IntegrityError

from .record import Artifact

if TYPE_CHECKING:  # pragma: no cover
    from tether.workspace import Workspace

SKOPS_MEDIA_TYPE = "application/x-skops"


def class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _skops_bytes(obj: Any) -> tuple[bytes, list[str]] | None:
    """The skops file of ``obj`` and its extra trusted types, or ``None`` if skops cannot
    write it or the file does not load back."""
    import skops.io as sio

    try:
        data = sio.dumps(obj)
        trusted = sorted(sio.get_untrusted_types(data=data))
        sio.loads(data, trusted=trusted)
    except Exception:  # noqa: BLE001 - any skops failure means: fall back to pickle
        return None
    return data, trusted


def save(workspace: Workspace, obj: Any, *, role: str, allow_pickle: bool = True) -> Artifact:
    """Store ``obj`` as a bundle artifact: skops if it can, else pickle (``allow_pickle``)."""
    written = _skops_bytes(obj)
    if written is not None:
        data, trusted = written
        ref = workspace.storage.put_bytes(data, suffix=".skops", media_type=SKOPS_MEDIA_TYPE)
        return Artifact(role=role, ref=ref, format="skops", cls=class_name(obj), trusted=tuple(trusted))
    if not allow_pickle:
        from tether.errors import DataError

        raise DataError(f"the {role} ({class_name(obj)}) cannot be saved with skops, and pickle is not allowed")
    return Artifact(role=role, ref=workspace.put_object(obj), format="pickle", cls=class_name(obj))


def read_verified(workspace: Workspace, artifact: Artifact, *, bundle_id: str) -> bytes:
    """The artifact's bytes, after its signature (pickle, with a signing key) and its digest
    matched what the bundle records."""
    if artifact.format == "pickle":
        from tether.signing import check_signature

        check_signature(artifact.ref.digest, artifact.ref.signature, what=f"{artifact.role} of bundle {bundle_id}")
    elif artifact.format != "skops":
        raise IntegrityError(f"{artifact.role} of bundle {bundle_id}: unknown artifact format '{artifact.format}'")
    return workspace.storage.read_bytes(artifact.ref)  # raises IntegrityError on a digest mismatch


def deserialize(artifact: Artifact, data: bytes, *, bundle_id: str) -> Any:
    """The object in ``data`` (already verified by :func:`read_verified`); a skops file
    holding a type the bundle did not record as trusted is refused."""
    what = f"{artifact.role} of bundle {bundle_id}"
    if artifact.format == "pickle":
        import pickle

        return pickle.loads(data)
    import skops.io as sio

    unexpected = sorted(set(sio.get_untrusted_types(data=data)) - set(artifact.trusted))
    if unexpected:
        raise IntegrityError(f"{what} holds types the bundle did not record as trusted: {', '.join(unexpected)}; "
                             "refusing to load it")
    return sio.loads(data, trusted=list(artifact.trusted))
