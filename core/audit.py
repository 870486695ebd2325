"""The audit log: who did what to which record, append-only and hash-chained.

Each entry is an :class:`~tether.records.AuditEntry` record numbered 1, 2, 3... without
gaps in the metadata store (``put_versioned(kind="audit_entry", name="audit")``), and each
commits to the entry before it::

    hash = sha256(canonical JSON of (id, name, version, action, subject, actor, details,
                                     created_at, prev_hash))

The previous entry is read inside the transaction that numbers the new one, so
concurrent writers still form one chain. A change and its entry are written together with
:func:`put` / :func:`put_versioned`: on a store whose ``atomic_audit`` is true (both built-in
stores) the store builds the entry (:func:`next_entry`) inside the transaction that writes
the change, so both are committed or neither is. :func:`verify` recomputes the chain and names
the first entry that was edited, reordered or deleted. Removing the newest entries
leaves a valid shorter chain; compare the head hash :func:`verify` reports with one kept
elsewhere (``tether audit verify --expect-head``) to detect that too.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs

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


@attrs.frozen(kw_only=True)
class Change:
    """What the audit entry of a change says: ``action`` (dotted, ``model.registered``) on
    ``subject`` (the id of the record it is about) by ``actor`` (``None``: :func:`actor`),
    with JSON-able ``details`` (from/to status, reason...; never secrets)."""

    action: str
    subject: str
    details: dict[str, Any] = attrs.field(factory=dict)
    actor: str | None = None


def next_entry(change: Change, version: int, previous: Any | None) -> Any:
    """Entry ``version`` of the log, recording ``change`` and chained to ``previous`` (the
    entry before it, read in the same transaction; ``None`` for the first). A store calls
    this inside the transaction that numbers the entry."""
    from .records import AuditEntry, utcnow

    if version > 1 and previous is None:
        raise StoreError(f"audit log: entry {version - 1} could not be read to chain entry {version} to it")
    entry = AuditEntry(id=f"audit-{version}", name=LOG, version=version, action=change.action,
                       subject=change.subject, actor=change.actor or _whoami(), details=_jsonable(change.details),
                       prev_hash=previous.hash if previous is not None else "", created_at=utcnow())
    return attrs.evolve(entry, hash=entry_hash(entry))


def append(store: Any, *, action: str, subject: str, details: dict[str, Any] | None = None,
           actor: str | None = None) -> Any:
    """Append one entry that records no stored change to the audit log of ``store`` and
    return it (an ``AuditEntry``); a change is recorded with :func:`put` / :func:`put_versioned`.

    :param action: what happened, dotted (``model.registered``, ``deployment.started``).
    :param subject: the id of the record it is about (``mv-churn-3``).
    :param details: JSON-able facts (from/to status, reason...); never secrets.
    :param actor: who did it; ``None`` for :func:`actor`.
    """
    change = Change(action=action, subject=subject, details=_jsonable(details), actor=actor)
    latest: list[Any] = []

    def remember(previous: Any) -> bool:  # read in the numbering transaction; never "unchanged"
        latest.append(previous)
        return False

    return store.put_versioned(lambda n: next_entry(change, n, latest[-1] if latest else None),
                               kind=KIND, name=LOG, unchanged=remember)


def put(store: Any, record: Any, change: Callable[[Any], Change], *, parents: Iterable[tuple[str, str]] = (),
        run_id: str | None = None) -> None:
    """Write the new ``record`` (``store.put``) with the audit entry ``change(record)``.

    On a store whose ``atomic_audit`` is true both commit in one transaction. A store
    written to the earlier contract (``atomic_audit`` false) writes the record, then the
    entry: a process killed between the two leaves the record without its entry.
    """
    if getattr(store, "atomic_audit", False):
        store.put(record, parents=parents, run_id=run_id, audit=change)
        return
    store.put(record, parents=parents, run_id=run_id)
    _append_change(store, change(record))


def put_versioned(store: Any, build: Callable[[int], Any], change: Callable[[Any], Change], *, kind: str,
                  name: str, parents: Iterable[tuple[str, str]] = (), run_id: str | None = None,
                  unchanged: Callable[[Any], bool] | None = None) -> Any:
    """``store.put_versioned(build, ...)`` with the audit entry ``change(record)`` of the
    record it writes (none when ``unchanged`` keeps the latest version or ``build`` raises).

    Atomic as :func:`put`: one transaction on a store whose ``atomic_audit`` is true, else
    the record's transaction, then the entry's.
    """
    if getattr(store, "atomic_audit", False):
        return store.put_versioned(build, kind=kind, name=name, parents=parents, run_id=run_id,
                                   unchanged=unchanged, audit=change)
    built: list[Any] = []

    def building(version: int) -> Any:
        built.append(build(version))
        return built[-1]

    record = store.put_versioned(building, kind=kind, name=name, parents=parents, run_id=run_id, unchanged=unchanged)
    if built and record is built[-1]:
        _append_change(store, change(record))
    return record


def _append_change(store: Any, change: Change) -> None:
    append(store, action=change.action, subject=change.subject, details=change.details, actor=change.actor)


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
