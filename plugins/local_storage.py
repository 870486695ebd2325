"""Local-filesystem storage: content-addressed objects under the workspace.

Layout: ``<root>/<digest[:2]>/<digest[2:]><suffix>``. A write goes to ``<root>/.tmp/`` first
and is renamed into place, so an object is either whole or absent. Digests are BLAKE3
(cryptographic, multi-threaded, several GB/s), checked on every read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, ClassVar, Iterator

import attrs

from tether import hookimpl
from tether.backends import Storage
from tether.errors import IntegrityError, NotFoundError, StoreError
from tether.records import ObjectRef

CHUNK = 8 << 20


def blake3_hasher():
    import blake3

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def safe_join(root: Path, key: str) -> Path:
    """``root / key``, refusing keys that are absolute or escape ``root``."""
    if not key or key.startswith(("/", "\\")) or ".." in Path(key).parts or ":" in key:
        raise StoreError(f"invalid object key '{key}': keys are relative and may not contain '..'")
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StoreError(f"invalid object key '{key}': it escapes the storage root")
    return path


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
        hasher = blake3_hasher()
        hasher.update_mmap(path) if path.stat().st_size else hasher.update(b"")
        size = path.stat().st_size
        if move and path.parent.resolve() == self._tmp_dir().resolve():
            return self._commit(path, hasher.hexdigest(), size, suffix, media_type)
        fd, tmp = tempfile.mkstemp(dir=self._tmp_dir())
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(Path(tmp), hasher.hexdigest(), size, suffix, media_type)
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
        hasher = blake3_hasher()
        path = self.local_path(ref)
        hasher.update_mmap(path) if path.stat().st_size else hasher.update(b"")
        return f"blake3:{hasher.hexdigest()}"

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

    def iter_keys(self) -> Iterator[str]:
        if not self.path.exists():
            return
        for path in self.path.rglob("*"):
            if path.is_file() and ".tmp" not in path.relative_to(self.path).parts:
                yield path.relative_to(self.path).as_posix()


@hookimpl
def tether_add_backends(backends):
    backends.add(LocalStorage)
