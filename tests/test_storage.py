"""The local storage backend: content addressing, atomic writes, verification, maintenance."""

from __future__ import annotations

import pytest
from tether.errors import IntegrityError, NotFoundError, StoreError
from tether.plugins.local_storage.storage import LocalStorage


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(workspace=str(tmp_path / "ws"))


def test_put_bytes_is_content_addressed_and_stored_once(storage):
    one = storage.put_bytes(b"hello", suffix=".txt")
    two = storage.put_bytes(b"hello", suffix=".txt")
    assert one == two and one.digest.startswith("blake3:") and one.size == 5
    assert one.key == f"{one.digest[7:9]}/{one.digest[9:]}.txt"
    assert list(storage.iter_keys()) == [one.key]
    assert storage.read_bytes(one) == b"hello"
    assert storage.digest_in_key(one.key) == one.digest


def test_put_file_moves_a_temp_file_in_and_leaves_no_temp(storage):
    tmp = storage.temp_path(".bin")
    tmp.write_bytes(b"x" * 10_000)
    ref = storage.put_file(tmp, suffix=".bin", move=True)
    assert not tmp.exists() and list(storage.iter_temp()) == []
    assert storage.verified_path(ref).read_bytes() == b"x" * 10_000


def test_a_changed_object_fails_every_read_naming_the_key(storage):
    ref = storage.put_bytes(b"original data")
    (storage.path / ref.key).write_bytes(b"tampered data")
    for read in (storage.read_bytes, storage.verify, storage.verified_path):
        with pytest.raises(IntegrityError, match=f"object '{ref.key}'"):
            read(ref)
    assert storage.digest_of_key(ref.key) != ref.digest


def test_missing_object_and_bad_keys(storage):
    ref = storage.put_bytes(b"data")
    (storage.path / ref.key).unlink()
    with pytest.raises(NotFoundError, match=f"object '{ref.key}' is missing"):
        storage.read_bytes(ref)
    for key in ("../outside", "/etc/passwd", "a/../../b"):
        with pytest.raises(StoreError, match="invalid object key"):
            storage.delete(key)


def test_root_that_is_not_writable_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    storage = LocalStorage(root=str(blocker / "objects"))
    with pytest.raises(StoreError, match="is not writable"):
        storage.put_bytes(b"data")
    with pytest.raises(StoreError, match="is not writable"):
        storage.temp_path()


def test_temp_files_are_listed_with_their_age_and_removable(storage):
    tmp = storage.temp_path(".parquet")
    listed = dict(storage.iter_temp())
    assert tmp.name in listed and listed[tmp.name] >= 0
    assert list(storage.iter_keys()) == []  # temp files are never objects
    storage.delete_temp(tmp.name)
    assert list(storage.iter_temp()) == []


def test_lock_and_lease_files_are_not_objects_and_reuse_refreshes_the_age(storage):
    import os

    ref = storage.put_bytes(b"kept")
    assert (storage.path / ".locks" / "gc.lock").is_file() and list((storage.path / ".locks").glob("*.lease"))
    assert list(storage.iter_keys()) == [ref.key] and list(storage.iter_temp()) == []
    old = storage.age_of(ref.key) + 7200
    os.utime(storage.path / ref.key, (os.path.getmtime(storage.path / ref.key) - 7200,) * 2)
    assert storage.age_of(ref.key) >= old - 1
    storage.put_bytes(b"kept")  # reused: as recent as a new object
    assert storage.age_of(ref.key) < 60
    with storage.gc_lock():
        keys, temp = storage.leased()
    assert ref.key in keys and temp == set()
    storage.release([ref.key])
    storage.release([ref.key])  # the second put holds it once more
    with storage.gc_lock():
        assert storage.leased() == (set(), set())
