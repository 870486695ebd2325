"""Local-filesystem storage: content-addressed objects under the workspace.

Layout: ``<root>/<digest[:2]>/<digest[2:]><suffix>``. A write goes to ``<root>/.tmp/`` first
and is renamed into place, so an object is either whole or absent. Digests are BLAKE3
(cryptographic, multi-threaded, several GB/s), checked on every read.

The methods below are the storage interface documented in ``docs/storage.md``; the S3
backend in ``tether.contrib.s3`` implements the same ones.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

import attrs
from tether import hookimpl
from tether.backends import Storage
from tether.errors import IntegrityError, NotFoundError, StoreError
from tether.records import ObjectRef

CHUNK = 8 << 20


def blake3_hasher():
    import blake3

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def hash_file(path: str | os.PathLike) -> str:
    """BLAKE3 hex digest of a file, read in chunks (bounded memory and address space,
    unlike mapping the whole file)."""
    hasher = blake3_hasher()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def safe_join(root: Path, key: str) -> Path:
    """``root / key``, refusing keys that are absolute or escape ``root``."""
    if not key or key.startswith(("/", "\\")) or ".." in Path(key).parts or ":" in key:
        raise StoreError(f"invalid object key '{key}': keys are relative and may not contain '..'")
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StoreError(f"invalid object key '{key}': it escapes the storage root")
    return path


def digest_in_key(key: str) -> str | None:
    """The digest a content-addressed key names (``ab/cdef...`` -> ``blake3:abcdef...``)."""
    head, _, tail = key.partition("/")
    hexpart = head + tail.split(".", 1)[0]
    if len(head) == 2 and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
        return f"blake3:{hexpart}"
    return None


def iter_leftovers(folder: Path) -> Iterator[tuple[str, float]]:
    """Files in a temp folder, as (name, age in seconds); files that vanish meanwhile are skipped."""
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.iterdir():
        try:
            yield path.name, now - path.stat().st_mtime
        except FileNotFoundError:  # finished meanwhile
            continue


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

    @staticmethod
    def key_for(digest_hex: str, suffix: str) -> str:
        return f"{digest_hex[:2]}/{digest_hex[2:]}{suffix}"

    def _commit(self, tmp_path: Path, digest_hex: str, size: int, suffix: str, media_type: str) -> ObjectRef:
        key = self.key_for(digest_hex, suffix)
        dest = safe_join(self.path, key)
        if dest.exists():
            tmp_path.unlink(missing_ok=True)  # identical content is stored once
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, dest)
            fsync_path(dest.parent)
        return ObjectRef(key=key, digest=f"blake3:{digest_hex}", size=size, media_type=media_type)

    def put_bytes(self, data: bytes, *, suffix: str = "", media_type: str = "application/octet-stream") -> ObjectRef:
        hasher = blake3_hasher()
        hasher.update(data)
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
        if move and path.parent.resolve() == self._tmp_dir().resolve():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())  # durable before it becomes visible
            return self._commit(path, digest_hex, size, suffix, media_type)
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
        """A fresh path in the storage's temp folder, for writers that stream to a file."""
        fd, tmp = tempfile.mkstemp(dir=self._tmp_dir(), suffix=suffix)
        os.close(fd)
        return Path(tmp)

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
            if path.is_file() and ".tmp" not in path.relative_to(self.path).parts:
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


def fsync_path(path: Path) -> None:
    """fsync a file or folder by path (best effort: a vanished path is ignored)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@hookimpl
def tether_add_backends(backends):
    backends.add(LocalStorage)
