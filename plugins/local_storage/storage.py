"""``LocalStorage``: content-addressed objects in a local folder (the methods are the storage
interface documented in ``docs/storage.md``)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar

import attrs
from tether.backends import Storage
from tether.errors import IntegrityError, NotFoundError, StoreError

from .files import CHUNK, blake3_hasher, digest_in_key, fsync_path, hash_file, iter_leftovers, safe_join
from .leases import LOCK_DIR, Leases, leases_for

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import ObjectRef


@attrs.define(kw_only=True)
class LocalStorage(Storage):
    """Objects in a local folder (default ``<workspace>/objects``)."""

    name: ClassVar[str] = "local"
    workspace: str = ".tether"
    root: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.root) if self.root else Path(self.workspace) / "objects"

    def _tmp_dir(self) -> Path:
        tmp = self.path / ".tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"storage root '{self.path}' is not writable: {exc.strerror}") from None
        if not os.access(tmp, os.W_OK):
            raise StoreError(f"storage root '{self.path}' is not writable")
        return tmp

    @property
    def leases(self) -> Leases:
        """The lock and lease files that keep ``tether verify --gc`` off writes in progress."""
        return leases_for(self.path)

    @staticmethod
    def key_for(digest_hex: str, suffix: str) -> str:
        return f"{digest_hex[:2]}/{digest_hex[2:]}{suffix}"

    def _commit(self, tmp_path: Path, digest_hex: str, size: int, suffix: str, media_type: str) -> ObjectRef:
        # called inside self.leases.writing(): gc cannot run until the key is in our lease
        key = self.key_for(digest_hex, suffix)
        dest = safe_join(self.path, key)
        self.leases.hold(key)
        if dest.exists():
            tmp_path.unlink(missing_ok=True)  # identical content is stored once
            os.utime(dest)  # reused: it is as recent as a new object (for --grace)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, dest)
            fsync_path(dest.parent)
        from tether.records import ObjectRef  # lazy: keeps start-up light

        return ObjectRef(key=key, digest=f"blake3:{digest_hex}", size=size, media_type=media_type)

    def put_bytes(self, data: bytes, *, suffix: str = "", media_type: str = "application/octet-stream") -> ObjectRef:
        hasher = blake3_hasher()
        hasher.update(data)
        with self.leases.writing():
            fd, tmp = tempfile.mkstemp(dir=self._tmp_dir())
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                return self._commit(Path(tmp), hasher.hexdigest(), len(data), suffix, media_type)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def put_file(self, path: str | os.PathLike, *, suffix: str = "", media_type: str = "application/octet-stream",
                 move: bool = False) -> ObjectRef:
        """Store a file; with ``move`` a file already on the same filesystem is renamed in."""
        path = Path(path)
        digest_hex = hash_file(path)
        size = path.stat().st_size
        with self.leases.writing():
            if move and path.parent.resolve() == self._tmp_dir().resolve():
                with path.open("rb") as fh:
                    os.fsync(fh.fileno())  # durable before it becomes visible
                ref = self._commit(path, digest_hex, size, suffix, media_type)
                self.leases.release([f"tmp:{path.name}"])
                return ref
            fd, tmp = tempfile.mkstemp(dir=self._tmp_dir())
            try:
                with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                return self._commit(Path(tmp), digest_hex, size, suffix, media_type)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh path in the storage's temp folder, for writers that stream to a file; gc
        leaves it alone while this process lives."""
        with self.leases.writing():
            fd, tmp = tempfile.mkstemp(dir=self._tmp_dir(), suffix=suffix)
            os.close(fd)
            self.leases.hold(f"tmp:{Path(tmp).name}")
        return Path(tmp)

    def release(self, keys) -> None:
        """The records referencing these object keys are committed (or the write was
        abandoned): gc may judge them by references alone again."""
        self.leases.release(keys)

    def gc_lock(self):
        """Held by ``tether verify --gc`` while it marks and sweeps; no put runs meanwhile."""
        return self.leases.collecting()

    def leased(self) -> tuple[set[str], set[str]]:
        """(object keys, temp names) that live writers hold; call inside :meth:`gc_lock`."""
        entries = self.leases.live_entries()
        temp = {e.removeprefix("tmp:") for e in entries if e.startswith("tmp:")}
        return {e for e in entries if not e.startswith("tmp:")}, temp

    def age_of(self, key: str) -> float | None:
        """Seconds since the object ``key`` was written (or last reused), or None if absent."""
        try:
            return time.time() - safe_join(self.path, key).stat().st_mtime
        except OSError:
            return None

    def local_path(self, ref: ObjectRef) -> Path:
        path = safe_join(self.path, ref.key)
        if not path.exists():
            raise NotFoundError(f"object '{ref.key}' is missing from storage '{self.path}'")
        return path

    def open(self, ref: ObjectRef) -> BinaryIO:
        """The raw object (not verified; use ``read_bytes`` or ``verify`` for that)."""
        return self.local_path(ref).open("rb")

    def digest_of(self, ref: ObjectRef) -> str:
        return f"blake3:{hash_file(self.local_path(ref))}"

    def verify(self, ref: ObjectRef) -> None:
        actual = self.digest_of(ref)
        if actual != ref.digest:
            raise IntegrityError(
                f"object '{ref.key}' in '{self.path}' does not match its recorded digest "
                f"(expected {ref.digest[:23]}..., found {actual[:23]}...): it was changed or corrupted"
            )

    def read_bytes(self, ref: ObjectRef) -> bytes:
        data = self.local_path(ref).read_bytes()
        hasher = blake3_hasher()
        hasher.update(data)
        if f"blake3:{hasher.hexdigest()}" != ref.digest:
            raise IntegrityError(
                f"object '{ref.key}' in '{self.path}' does not match its recorded digest: "
                "it was changed or corrupted"
            )
        return data

    def verified_path(self, ref: ObjectRef) -> Path:
        """A local file holding the object, checked against its digest (streaming, no full read
        into memory); readers open it with pyarrow without another copy."""
        self.verify(ref)
        return self.local_path(ref)

    def iter_keys(self) -> Iterator[str]:
        """Every committed object key (temp files of writes in progress are not objects)."""
        if not self.path.exists():
            return
        for path in self.path.rglob("*"):
            parts = path.relative_to(self.path).parts
            if path.is_file() and ".tmp" not in parts and parts[0] != LOCK_DIR:
                yield path.relative_to(self.path).as_posix()

    def digest_of_key(self, key: str) -> str:
        """BLAKE3 of the object stored under ``key`` (for ``tether verify``)."""
        path = safe_join(self.path, key)
        if not path.is_file():
            raise NotFoundError(f"object '{key}' is missing from storage '{self.path}'")
        return f"blake3:{hash_file(path)}"

    @staticmethod
    def digest_in_key(key: str) -> str | None:
        return digest_in_key(key)

    def iter_temp(self) -> Iterator[tuple[str, float]]:
        """Leftovers of interrupted writes: (name, age in seconds)."""
        return iter_leftovers(self.path / ".tmp")

    def delete_temp(self, name: str) -> None:
        (self.path / ".tmp" / Path(name).name).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        """Remove an object (only ``tether verify --gc`` does, for unreferenced objects)."""
        safe_join(self.path, key).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"local:{self.path}"
