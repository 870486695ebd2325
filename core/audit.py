"""The audit log: who did what to which record, append-only and hash-chained.

Each entry is an :class:`~tether.records.AuditEntry` record numbered 1, 2, 3... without
gaps in the metadata store (``put_versioned(kind="audit_entry", name="audit")``), and each
commits to the entry before it::

    hash = sha256(canonical JSON of (id, name, version, action, subject, actor, details,
                                     created_at, prev_hash))

The previous entry is read inside the transaction that numbers the new one, so
concurrent writers still form one chain. :func:`verify` recomputes the chain and names
the first entry that was edited, reordered or deleted. Removing the newest entries
leaves a valid shorter chain; compare the head hash :func:`verify` reports with one kept
elsewhere (``tether audit verify --expect-head``) to detect that too.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from typing import Any

from .errors import StoreError, TetherError

KIND = "audit_entry"
LOG = "audit"
#: the fields an entry's hash covers, in the order they are hashed
HASHED = ("id", "name", "version", "action", "subject", "actor", "details", "created_at", "prev_hash")


def actor() -> str:
    """Who is acting: ``$TETHER_ACTOR``, else the operating-system user name."""
    name = os.environ.get("TETHER_ACTOR", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


_whoami = actor


def entry_hash(entry: Any) -> str:
    """The SHA-256 (hex) an entry's ``hash`` must hold, computed from its other fields."""
    from . import serde

    data = serde.converter.unstructure(entry)
    payload = json.dumps([data[f] for f in HASHED], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _jsonable(details: dict[str, Any] | None) -> dict[str, Any]:
    """``details`` as plain JSON values (what it reads back as), so its hash is stable."""
    try:
        value = json.loads(json.dumps(details or {}, sort_keys=True, default=str))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"audit details must be JSON values: {exc}") from None
    if not isinstance(value, dict):
        raise StoreError("audit details must be a mapping")
    return value


def append(store: Any, *, action: str, subject: str, details: dict[str, Any] | None = None,
           actor: str | None = None) -> Any:
    """Append one entry to the audit log of ``store`` and return it (an ``AuditEntry``).

    :param action: what happened, dotted (``model.registered``, ``deployment.started``).
    :param subject: the id of the record it is about (``mv-churn-3``).
    :param details: JSON-able facts (from/to status, reason...); never secrets.
    :param actor: who did it; ``None`` for :func:`actor`.
    """
    import attrs

    from .records import AuditEntry, utcnow

    who = actor or _whoami()
    payload = _jsonable(details)
    latest: list[Any] = []

    def remember(previous: Any) -> bool:  # read in the numbering transaction; never "unchanged"
        latest.append(previous)
        return False

    def build(version: int) -> AuditEntry:
        if version > 1 and not latest:
            raise StoreError(f"audit log: entry {version - 1} could not be read to chain entry {version} to it")
        prev = latest[-1].hash if latest else ""
        entry = AuditEntry(id=f"audit-{version}", name=LOG, version=version, action=action, subject=subject,
                           actor=who, details=payload, prev_hash=prev, created_at=utcnow())
        return attrs.evolve(entry, hash=entry_hash(entry))

    return store.put_versioned(build, kind=KIND, name=LOG, unchanged=remember)


def entries(store: Any) -> list[Any]:
    """Every audit entry, oldest first (by position in the log)."""
    return sorted(store.find(KIND, name=LOG), key=lambda e: e.version)


def verify(store: Any, *, expect_head: str | None = None) -> list[str]:
    """Problems with the audit log of ``store``, first problem first; empty when intact.

    Checks, in log order: positions run 1..N without a gap (a deleted entry), the store
    returns entries in the order they were written (a reordered one), each entry's hash
    matches its contents (an edited one) and each ``prev_hash`` is its predecessor's hash.
    With ``expect_head``, the newest entry's hash must equal it (entries removed from the end).
    """
    try:
        written = list(reversed(store.find(KIND, name=LOG)))  # the store's insertion order
    except (TetherError, ValueError) as exc:
        return [_unreadable(store, exc)]
    problems: list[str] = []
    for before, after in zip(written, written[1:]):
        if after.version <= before.version:
            problems.append(f"entry {after.version} ({after.id}) is stored after entry {before.version}: "
                            "the log was reordered")
            break
    chain = sorted(written, key=lambda e: e.version)
    expected_prev, expected_version = "", 1
    for entry in chain:
        if entry.version != expected_version:
            missing = (f"entry {expected_version}" if entry.version == expected_version + 1
                       else f"entries {expected_version}-{entry.version - 1}")
            problems.append(f"{missing} missing before entry {entry.version}: deleted from the log")
        if entry.id != f"audit-{entry.version}" or entry.name != LOG:
            problems.append(f"entry {entry.version} ({entry.id}): its id does not match its position: edited")
        if entry.hash != entry_hash(entry):
            problems.append(f"entry {entry.version} ({entry.id}): hash does not match its contents: edited")
        elif entry.prev_hash != expected_prev and entry.version == expected_version:
            problems.append(f"entry {entry.version} ({entry.id}): does not follow entry {entry.version - 1} "
                            "(previous hash differs): an entry before it was edited, replaced or reordered")
        expected_prev, expected_version = entry.hash, entry.version + 1
    if expect_head is not None:
        head = chain[-1].hash if chain else ""
        if head != expect_head:
            problems.append(f"the newest entry's hash is {head[:16] or '(none)'}, not the expected "
                            f"{expect_head[:16]}: entries were removed from the end or added")
    return problems


def _unreadable(store: Any, error: Exception) -> str:
    """The first entry whose stored body no longer parses, found by reading them one by one."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    number, missing = 1, 0
    while missing < 1000:  # ids are audit-1, audit-2, ...; deleted ones leave holes
        try:
            found = store.get(f"audit-{number}")
        except (TetherError, ValueError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return f"entry {number} (audit-{number}) cannot be read ({detail[:120]}): edited"
        missing = 0 if found is not None else missing + 1
        number += 1
    return f"an audit entry cannot be read ({reason[:120]}): edited"


def head(store: Any) -> tuple[int, str]:
    """``(count, hash)`` of the newest entry (``(0, "")`` for an empty log)."""
    chain = store.find(KIND, name=LOG, limit=1)
    return (chain[0].version, chain[0].hash) if chain else (0, "")
