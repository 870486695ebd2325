"""``tether verify``: re-hash every stored object, find changed, missing and leftover ones,
optionally recompute snapshot fingerprints (``--deep``) and delete leftovers (``--gc``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from tether.errors import IntegrityError
from tether.records import DatasetSnapshot, ObjectRef, object_refs

from .fingerprint import Fingerprinter
from .read import iter_snapshot_batches, verified_part_paths

if TYPE_CHECKING:  # pragma: no cover
    from tether.workspace import Workspace


def recompute_fingerprint(workspace: Workspace, snapshot: DatasetSnapshot) -> str:
    """Re-read a snapshot and compute its fingerprint again (``tether verify --deep``)."""
    import pyarrow.parquet as pq

    paths = verified_part_paths(workspace, snapshot)
    fp = Fingerprinter(pq.read_schema(paths[0]))
    for batch in iter_snapshot_batches(workspace, snapshot):
        fp.update(batch)
    return "xxh3_128:" + fp.hexdigest()


def _referenced(store, altered: list | None = None) -> tuple[dict[str, list[tuple[ObjectRef, str]]],
                                                             list[DatasetSnapshot]]:
    """Every object key any record references (with the refs and record ids), and the
    snapshots; records whose content-derived id does not match go to ``altered``."""
    from tether.records import RECORD_KINDS

    referenced: dict[str, list[tuple[ObjectRef, str]]] = {}
    snapshots = []
    for kind in RECORD_KINDS:
        for record in store.find(kind):
            expected = derived_id(record)
            if altered is not None and expected is not None and expected != record.id:
                altered.append({"record": record.id, "kind": kind, "expected": expected})
            for ref in object_refs(record):
                referenced.setdefault(ref.key, []).append((ref, record.id))
            if kind == "snapshot":
                snapshots.append(record)
    return referenced, snapshots


def derived_id(record) -> str | None:
    """The id a content-addressed record (snapshot, model, feature set) must have, else None."""
    from tether.records import FeatureSet, TrainedModel

    from .create import snapshot_id

    if isinstance(record, DatasetSnapshot):
        return snapshot_id(record.fingerprint) if ":" in record.fingerprint else None
    if isinstance(record, TrainedModel):
        return TrainedModel.id_for(record.artifact)
    if isinstance(record, FeatureSet):
        return FeatureSet.id_for(snapshot_id=record.snapshot_id, split_id=record.split_id,
                                 transform=record.transform, matrices=record.matrices)
    return None


def _rehash(storage, referenced) -> tuple[int, list, list, list]:
    """Re-hash referenced and stored objects: (checked, changed, missing, unreferenced)."""
    changed, missing, unreferenced = [], [], []
    checked = 0
    stored = set(storage.iter_keys())
    for key, uses in sorted(referenced.items()):
        records = sorted({rid for _, rid in uses})
        if key not in stored:
            missing.append({"key": key, "records": records})
            continue
        actual = storage.digest_of_key(key)
        checked += 1
        expected = {r.digest for r, _ in uses}
        if actual not in expected or len(expected) > 1:
            changed.append({"key": key, "expected": min(expected), "actual": actual, "records": records})
    for key in sorted(stored - set(referenced)):
        actual = storage.digest_of_key(key)
        checked += 1
        named = storage.digest_in_key(key)
        if named is not None and named != actual:
            changed.append({"key": key, "expected": named, "actual": actual, "records": []})
        else:
            unreferenced.append(key)
    return checked, changed, missing, unreferenced


def _fingerprint_mismatches(workspace: Workspace, snapshots, bad_keys: set[str]) -> list[dict[str, str]]:
    out = []
    for snap in snapshots:
        if any(ref.key in bad_keys for ref in snap.objects):
            continue
        actual = recompute_fingerprint(workspace, snap)
        if actual != snap.fingerprint:
            out.append({"snapshot": snap.id, "expected": snap.fingerprint, "actual": actual})
    return out


def _collect_garbage(workspace: Workspace, unreferenced: list[str], temp: list[dict],
                     grace_seconds: float) -> list[str]:
    """Delete leftovers, under the storage's gc lock (no put runs meanwhile): first the
    leases of live writers are read, then the records again, and only objects neither
    names (and temp files no live writer holds) older than ``grace_seconds`` go."""
    storage = workspace.storage
    lock = getattr(storage, "gc_lock", None)  # optional Storage methods, see docs/storage.md
    with lock() if callable(lock) else contextlib.nullcontext():
        leased = getattr(storage, "leased", None)
        leased_keys, leased_temp = leased() if callable(leased) else (set(), set())
        referenced, _ = _referenced(workspace.store)  # after the leases: see tether.plugins.local_storage.leases
        removed = []
        for key in unreferenced:
            if key in referenced or key in leased_keys:
                continue
            age = _object_age(storage, key)
            if age is None or age >= grace_seconds:
                storage.delete(key)
                removed.append(key)
        for item in temp:
            if item["name"] not in leased_temp and item["age_seconds"] >= grace_seconds:
                storage.delete_temp(item["name"])
                removed.append(".tmp/" + item["name"])
    return removed


def verify_workspace(workspace: Workspace, *, deep: bool = False, gc: bool = False,
                     grace_seconds: float = 3600.0) -> dict[str, Any]:
    """Re-hash every object that a record references and every object in storage.

    Returns a report with ``changed`` and ``missing`` objects (the problems), ``unreferenced``
    objects (committed by a write that was interrupted before its record; harmless) and
    ``temp`` files of writes in progress or interrupted. With ``gc``, unreferenced objects and
    temp files older than ``grace_seconds`` are deleted.
    """
    storage = workspace.storage
    altered: list[dict[str, str]] = []
    referenced, snapshots = _referenced(workspace.store, altered)
    checked, changed, missing, unreferenced = _rehash(storage, referenced)
    mismatched_fp = []
    if deep:
        bad_keys = {c["key"] for c in changed} | {m["key"] for m in missing}
        mismatched_fp = _fingerprint_mismatches(workspace, snapshots, bad_keys)
    temp = [{"name": n, "age_seconds": round(age, 1)} for n, age in storage.iter_temp()]
    removed = _collect_garbage(workspace, unreferenced, temp, grace_seconds) if gc else []
    return {
        "ok": not (changed or missing or mismatched_fp or altered), "altered": altered,
        "checked": checked, "records": sum(len(v) for v in referenced.values()),
        "changed": changed, "missing": missing, "fingerprint_mismatch": mismatched_fp,
        "unreferenced": unreferenced, "temp": temp, "removed": removed,
    }


def _object_age(storage, key: str) -> float | None:
    age_of = getattr(storage, "age_of", None)  # optional Storage method
    return age_of(key) if callable(age_of) else None


def format_verify(report: dict[str, Any]) -> str:
    """The report as ``tether verify`` prints it: one line per problem, then a summary."""
    lines = []
    for item in report["changed"]:
        used = f" (used by {', '.join(item['records'])})" if item["records"] else ""
        lines.append(f"CHANGED  {item['key']}{used}: expected {item['expected']}, found {item['actual']}")
    for item in report["altered"]:
        lines.append(f"ALTERED  record {item['record']} ({item['kind']}): its content derives id "
                     f"{item['expected']}, not its own: record altered")
    for item in report["missing"]:
        lines.append(f"MISSING  {item['key']} (used by {', '.join(item['records'])})")
    for item in report["fingerprint_mismatch"]:
        lines.append(f"DATA     snapshot {item['snapshot']}: fingerprint {item['actual']} != recorded "
                     f"{item['expected']}")
    extra = []
    if report["unreferenced"]:
        extra.append(f"{len(report['unreferenced'])} unreferenced objects from interrupted writes")
    if report["temp"]:
        extra.append(f"{len(report['temp'])} temp files")
    if report["removed"]:
        extra.append(f"{len(report['removed'])} removed by --gc")
    elif extra:
        extra.append("remove them with `tether verify --gc`")
    status = "ok" if report["ok"] else "FAILED"
    lines.append(f"verify {status}: {report['checked']} objects re-hashed, {len(report['changed'])} changed, "
                 f"{len(report['missing'])} missing, {len(report['altered'])} records altered"
                 + (f"; {'; '.join(extra)}" if extra else ""))
    return "\n".join(lines)


def verify_failure(report: dict[str, Any], root) -> IntegrityError:
    """The error ``tether verify`` exits with when the report is not ok."""
    kinds = ("changed", "missing", "fingerprint_mismatch", "altered")
    problems = [f"{len(report[k])} {k.replace('_', ' ')}" for k in kinds if report[k]]
    first = (report["changed"] or report["missing"]
             or [{"key": item["snapshot"]} for item in report["fingerprint_mismatch"]]
             or [{"key": item["record"]} for item in report["altered"]])[0]
    return IntegrityError(f"verify failed in {root}: {', '.join(problems)} (first: '{first['key']}')")
