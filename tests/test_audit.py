"""The audit log: append-only, hash-chained, and a tampered log is named entry by entry."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tether import audit


@pytest.fixture
def logged(workspace):
    for i in range(1, 6):
        audit.append(workspace.store, action="model.transition", subject=f"mv-churn-{i}",
                     details={"from": "experimental", "to": "candidate", "n": i}, actor="alice")
    workspace.close()
    return workspace


def _db(workspace) -> sqlite3.Connection:
    return sqlite3.connect(workspace.root / "tether.db", isolation_level=None)


def _body(conn, entry_id: str) -> dict:
    return json.loads(conn.execute("SELECT body FROM records WHERE id = ?", (entry_id,)).fetchone()[0])


def _set_body(conn, entry_id: str, body: dict) -> None:
    conn.execute("UPDATE records SET body = ? WHERE id = ?", (json.dumps(body), entry_id))


def test_entries_are_numbered_and_each_commits_to_the_one_before(logged):
    entries = audit.entries(logged.store)
    assert [e.version for e in entries] == [1, 2, 3, 4, 5]
    assert [e.id for e in entries] == [f"audit-{i}" for i in range(1, 6)]
    assert entries[0].prev_hash == ""
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert all(e.hash == audit.entry_hash(e) and len(e.hash) == 64 for e in entries)
    assert audit.verify(logged.store) == []
    assert audit.head(logged.store) == (5, entries[-1].hash)


def test_the_actor_comes_from_the_environment_or_the_os_user(workspace, monkeypatch):
    monkeypatch.setenv("TETHER_ACTOR", "release-bot")
    assert audit.actor() == "release-bot"
    assert audit.append(workspace.store, action="x.y", subject="s").actor == "release-bot"
    monkeypatch.delenv("TETHER_ACTOR")
    import getpass

    assert audit.actor() == getpass.getuser()


def test_details_must_be_json(workspace):
    from tether.errors import StoreError

    with pytest.raises(StoreError, match="audit details must be a mapping"):
        audit.append(workspace.store, action="x", subject="s", details=[1, 2])
    assert audit.entries(workspace.store) == []


def test_an_edited_entry_is_named(logged):
    with _db(logged) as conn:
        body = _body(conn, "audit-3")
        body["data"]["actor"] = "mallory"
        _set_body(conn, "audit-3", body)
    problems = audit.verify(logged.store)
    assert problems[0] == "entry 3 (audit-3): hash does not match its contents: edited"


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(logged):
    with _db(logged) as conn:
        body = _body(conn, "audit-2")
        body["data"]["details"]["to"] = "production"
    from tether import serde

    forged = serde.from_dict(body)
    body["data"]["hash"] = audit.entry_hash(forged)
    with _db(logged) as conn:
        _set_body(conn, "audit-2", body)
    problems = audit.verify(logged.store)
    assert problems and problems[0].startswith("entry 3 (audit-3): does not follow entry 2")


def test_a_deleted_entry_is_named(logged):
    with _db(logged) as conn:
        conn.execute("DELETE FROM records WHERE id = 'audit-2'")
    problems = audit.verify(logged.store)
    assert problems[0] == "entry 2 missing before entry 3: deleted from the log"


def test_two_swapped_entries_are_named(logged):
    with _db(logged) as conn:
        second, fourth = _body(conn, "audit-2"), _body(conn, "audit-4")
        _set_body(conn, "audit-2", fourth)
        _set_body(conn, "audit-4", second)
    problems = audit.verify(logged.store)
    assert problems and "reordered" in problems[0] and "entry 4" in problems[0]


def test_renumbered_entries_are_named(logged):
    """Swapping two entries' positions (their numbers) breaks their hashes."""
    with _db(logged) as conn:
        for entry_id, number in (("audit-2", 4), ("audit-4", 2)):
            body = _body(conn, entry_id)
            body["data"]["version"] = number
            body["data"]["id"] = f"audit-{number}"
            conn.execute("UPDATE records SET body = ?, version = NULL WHERE id = ?", (json.dumps(body), entry_id))
    problems = audit.verify(logged.store)
    assert any("entry 2" in p and "edited" in p for p in problems)


def test_entries_removed_from_the_end_are_caught_with_the_expected_head(logged):
    head = audit.head(logged.store)[1]
    with _db(logged) as conn:
        conn.execute("DELETE FROM records WHERE id = 'audit-5'")
    assert audit.verify(logged.store) == []  # a shorter chain is still a chain
    problems = audit.verify(logged.store, expect_head=head)
    assert len(problems) == 1 and "removed from the end" in problems[0]


def test_tether_audit_verify_exits_1_naming_the_first_bad_entry(logged, tether_cli, tmp_path):
    ok = tether_cli("audit", "verify", "--workspace", str(logged.root))
    assert ok.exit_code == 0 and "audit log intact: 5 entries" in ok.stdout, ok
    listed = tether_cli("audit", "ls", "--workspace", str(logged.root))
    assert listed.exit_code == 0 and "model.transition  mv-churn-5" in listed.stdout, listed
    with _db(logged) as conn:
        body = _body(conn, "audit-4")
        body["data"]["subject"] = "mv-churn-9"
        _set_body(conn, "audit-4", body)
    bad = tether_cli("audit", "verify", "--workspace", str(logged.root))
    assert bad.exit_code == 1, bad
    assert bad.stderr.strip() == ("tether: error: audit log fails verification: entry 4 (audit-4): hash does not "
                                  "match its contents: edited")
    as_json = tether_cli("audit", "verify", "--json", "--workspace", str(logged.root))
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and data["ok"] is False and data["entries"] == 5


def test_an_entry_cannot_be_replaced_through_the_store(logged):
    import attrs
    from tether.errors import StoreError

    entry = audit.entries(logged.store)[1]
    with pytest.raises(StoreError, match="immutable"):
        logged.store.put(attrs.evolve(entry, actor="mallory"), replace=True)
    assert audit.verify(logged.store) == []


def test_an_entry_that_no_longer_parses_is_named(logged):
    with _db(logged) as conn:
        conn.execute("UPDATE records SET body = 'not json' WHERE id = 'audit-3'")
    problems = audit.verify(logged.store)
    assert len(problems) == 1 and problems[0].startswith("entry 3 (audit-3) cannot be read (")
