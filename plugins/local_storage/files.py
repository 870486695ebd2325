"""File helpers of content-addressed storage: BLAKE3 hashing, safe key paths, the digest a
key names, leftovers of interrupted writes and fsync by path. Shared by ``LocalStorage``,
the S3 backend (``tether.contrib.s3``) and the snapshot stage."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from tether.errors import StoreError

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

