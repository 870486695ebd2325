"""``S3Storage``: content-addressed objects in an S3-compatible bucket through fsspec/s3fs
(imported on first use), with the same key layout and BLAKE3 digests as local storage."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs
from tether.backends import Storage
from tether.errors import IntegrityError, NotFoundError, StoreError
from tether.plugins.local_storage.files import CHUNK, blake3_hasher, digest_in_key, hash_file, iter_leftovers

if TYPE_CHECKING:  # pragma: no cover
    from tether.records import ObjectRef


@attrs.define(kw_only=True)
class S3Storage(Storage):
    """Content-addressed objects in an S3-compatible bucket."""

    name: ClassVar[str] = "s3"
    requires: ClassVar[tuple[str, ...]] = ("s3fs",)
    extra: ClassVar[str | None] = "s3"

    url: str  # s3://bucket[/prefix]
    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = None
    secret: str | None = None
    workspace: str = ".tether"  # local temp files and the verified read cache live here
    _fs: Any = attrs.field(default=None, init=False, repr=False)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def bucket_path(self) -> str:
        if not self.url.startswith("s3://") or len(self.url) <= 5:
            raise StoreError(f"s3 storage: url must look like s3://bucket/prefix, got '{self.url}'")
        return self.url[5:].strip("/")

    @property
    def fs(self):
        if self._fs is None:
            import s3fs

            client_kwargs: dict[str, Any] = {}
            if self.endpoint_url:
                client_kwargs["endpoint_url"] = self.endpoint_url
            if self.region:
                client_kwargs["region_name"] = self.region
            self._fs = s3fs.S3FileSystem(key=self.key, secret=self.secret, client_kwargs=client_kwargs,
                                         use_listings_cache=False, skip_instance_cache=True)
        return self._fs

    def _remote(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid object key '{key}': keys are relative and may not contain '..'")
        return f"{self.bucket_path}/{key}"

    def _where(self) -> str:
        return f"s3://{self.bucket_path}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _call(self, what: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreError(f"s3 storage {self._where()}: {what} denied: {exc}") from None
        except OSError as exc:
            raise StoreError(f"s3 storage {self._where()}: {what} failed: {exc}") from None
        except Exception as exc:  # botocore/aiohttp errors: unreachable endpoint, bad credentials
            raise StoreError(f"s3 storage {self._where()}: {what} failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    @staticmethod
    def key_for(digest_hex: str, suffix: str) -> str:
        return f"{digest_hex[:2]}/{digest_hex[2:]}{suffix}"

    def _local_dir(self, name: str) -> Path:
        path = Path(self.workspace) / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"s3 storage: local folder '{path}' is not writable: {exc.strerror}") from None
        return path

    # -- writing -----------------------------------------------------------------------------

    def _upload(self, local: Path, digest_hex: str, size: int, suffix: str, media_type: str) -> ObjectRef:
        key = self.key_for(digest_hex, suffix)
        remote = self._remote(key)
        if not self._call("checking an object", self.fs.exists, remote):  # identical content is stored once
            self._call("uploading an object", self.fs.put_file, str(local), remote)
        from tether.records import ObjectRef  # lazy: keeps start-up light

        return ObjectRef(key=key, digest=f"blake3:{digest_hex}", size=size, media_type=media_type)

    def put_bytes(self, data: bytes, *, suffix: str = "", media_type: str = "application/octet-stream") -> ObjectRef:
        hasher = blake3_hasher()
        hasher.update(data)
        digest_hex = hasher.hexdigest()
        key = self.key_for(digest_hex, suffix)
        remote = self._remote(key)
        if not self._call("checking an object", self.fs.exists, remote):
            self._call("uploading an object", self.fs.pipe_file, remote, data)
        from tether.records import ObjectRef  # lazy: keeps start-up light

        return ObjectRef(key=key, digest=f"blake3:{digest_hex}", size=len(data), media_type=media_type)

    def put_file(self, path: str | os.PathLike, *, suffix: str = "", media_type: str = "application/octet-stream",
                 move: bool = False) -> ObjectRef:
        path = Path(path)
        size = path.stat().st_size
        ref = self._upload(path, hash_file(path), size, suffix, media_type)
        if move:
            path.unlink(missing_ok=True)
        return ref

    def temp_path(self, suffix: str = "") -> Path:
        fd, tmp = tempfile.mkstemp(dir=self._local_dir("s3-tmp"), suffix=suffix)
        os.close(fd)
        return Path(tmp)

    # -- reading -----------------------------------------------------------------------------

    def open(self, ref: ObjectRef) -> BinaryIO:
        """The raw object (not verified)."""
        try:
            return self._call("opening an object", self.fs.open, self._remote(ref.key), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"object '{ref.key}' is missing from {self._where()}") from None

    def digest_of_key(self, key: str) -> str:
        hasher = blake3_hasher()
        try:
            with self._call("reading an object", self.fs.open, self._remote(key), "rb") as fh:
                while chunk := fh.read(CHUNK):
                    hasher.update(chunk)
        except FileNotFoundError:
            raise NotFoundError(f"object '{key}' is missing from {self._where()}") from None
        return f"blake3:{hasher.hexdigest()}"

    def digest_of(self, ref: ObjectRef) -> str:
        return self.digest_of_key(ref.key)

    def _mismatch(self, ref: ObjectRef) -> IntegrityError:
        return IntegrityError(f"object '{ref.key}' in {self._where()} does not match its recorded digest: "
                              "it was changed or corrupted")

    def verify(self, ref: ObjectRef) -> None:
        if self.digest_of(ref) != ref.digest:
            raise self._mismatch(ref)

    def read_bytes(self, ref: ObjectRef) -> bytes:
        try:
            data = self._call("reading an object", self.fs.cat_file, self._remote(ref.key))
        except FileNotFoundError:
            raise NotFoundError(f"object '{ref.key}' is missing from {self._where()}") from None
        hasher = blake3_hasher()
        hasher.update(data)
        if f"blake3:{hasher.hexdigest()}" != ref.digest:
            raise self._mismatch(ref)
        return data

    def verified_path(self, ref: ObjectRef) -> Path:
        """A verified local copy in ``<workspace>/s3-cache/``.

        The copy is reused while the remote object's ETag and size are unchanged (one HEAD
        request) and its BLAKE3 digest still matches; otherwise it is downloaded again and
        checked, so a changed remote object fails here with an IntegrityError."""
        cache = self._local_dir("s3-cache")
        local = cache / ref.key.replace("/", "")
        tag_file = local.with_name(local.name + ".etag")
        remote = self._remote(ref.key)
        try:
            info = self._call("reading object info", self.fs.info, remote)
        except FileNotFoundError:
            raise NotFoundError(f"object '{ref.key}' is missing from {self._where()}") from None
        tag = f"{info.get('ETag', '')}:{info.get('size', '')}"
        if local.exists() and tag_file.exists() and tag_file.read_text() == tag:
            # the remote object is the one downloaded before; re-check the local copy
            if f"blake3:{hash_file(local)}" == ref.digest:
                return local
        local.unlink(missing_ok=True)  # stale, damaged, or the remote object changed: fetch again
        tag_file.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".part")
        os.close(fd)
        try:
            try:
                self._call("downloading an object", self.fs.get_file, self._remote(ref.key), tmp)
            except FileNotFoundError:
                raise NotFoundError(f"object '{ref.key}' is missing from {self._where()}") from None
            if f"blake3:{hash_file(tmp)}" != ref.digest:
                raise self._mismatch(ref)
            os.replace(tmp, local)
            tag_file.write_text(tag)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return local

    # -- listing and maintenance ---------------------------------------------------------------

    def iter_keys(self) -> Iterator[str]:
        base = self.bucket_path
        try:
            found = self._call("listing objects", self.fs.find, base)
        except FileNotFoundError:
            return
        for path in found:
            key = path[len(base):].lstrip("/")
            if key:
                yield key

    @staticmethod
    def digest_in_key(key: str) -> str | None:
        return digest_in_key(key)

    def age_of(self, key: str) -> float | None:
        try:
            info = self._call("reading object info", self.fs.info, self._remote(key))
        except FileNotFoundError:
            return None
        modified = info.get("LastModified")
        return time.time() - modified.timestamp() if modified is not None else None

    def iter_temp(self) -> Iterator[tuple[str, float]]:
        return iter_leftovers(Path(self.workspace) / "s3-tmp")

    def delete_temp(self, name: str) -> None:
        (Path(self.workspace) / "s3-tmp" / Path(name).name).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        try:
            self._call("deleting an object", self.fs.rm_file, self._remote(key))
        except FileNotFoundError:
            pass

    def describe(self) -> str:
        return f"s3:{self._where()}"

