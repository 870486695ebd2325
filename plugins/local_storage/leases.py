"""What keeps ``tether verify --gc`` from removing an object a concurrent writer may reference.

Two kinds of lock files live in ``<root>/.locks/`` (``fcntl.flock``, so local filesystems):

- ``gc.lock``: a writer holds it SHARED while it puts (or reuses) an object or creates a temp
  file; garbage collection holds it EXCLUSIVE while it marks and sweeps. So gc never sees an
  object or temp file half-way through being written.
- ``<host>-<pid>-<nonce>.lease``: one per writing process, held EXCLUSIVE by it for its whole
  life. Before an object or temp file is released from the shared lock, its key (or temp
  name) is appended to the lease (``+key``); once the record that references it is committed
  the writer appends ``-key`` (:meth:`Leases.release`). gc, under its exclusive lock, first
  reads every lease whose process is alive (a lease it can lock belongs to a dead process and
  is removed), then the records; it deletes only objects that neither a record nor a live
  lease names. Reading the leases before the records closes the race: a writer drops a key
  only after its record is committed, so gc sees the key in one or the other.

This holds for any ``--grace``, including 0. Objects put by writers that never release them
(anything but the snapshot stage today) stay protected until their process exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tether.errors import StoreError

LOCK_DIR = ".locks"

_registry: dict[str, Leases] = {}
_registry_lock = threading.Lock()


def leases_for(root: Path) -> Leases:
    """The process-wide :class:`Leases` of a storage root (one lease file per process)."""
    key = str(Path(root).resolve())
    with _registry_lock:
        if key not in _registry:
            _registry[key] = Leases(Path(key))
        return _registry[key]


class Leases:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._mutex = threading.Lock()
        self._pid: int | None = None
        self._fd: int | None = None

    @property
    def folder(self) -> Path:
        return self.root / LOCK_DIR

    def _lock(self, mode: int) -> contextlib.AbstractContextManager[None]:
        @contextlib.contextmanager
        def held() -> Iterator[None]:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.folder / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(f"storage root '{self.root}' is not writable: {exc.strerror}") from None
            try:
                fcntl.flock(fd, mode)
                yield
            finally:
                os.close(fd)  # releases the lock

        return held()

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held by writers around a put / temp-file creation (shared between writers)."""
        return self._lock(fcntl.LOCK_SH)

    def collecting(self) -> contextlib.AbstractContextManager[None]:
        """Held by garbage collection while it marks and sweeps (excludes every writer)."""
        return self._lock(fcntl.LOCK_EX)

    def _append(self, lines: Iterable[str]) -> None:
        data = "".join(f"{line}\n" for line in lines).encode()
        if data:
            os.write(self._fd, data)

    def hold(self, entry: str) -> None:
        """Record ``entry`` (an object key or ``tmp:<name>``) in this process's lease; call it
        inside :meth:`writing`."""
        with self._mutex:
            if self._pid != os.getpid():
                self._open()
            self._append([f"+{entry}"])

    def release(self, entries: Iterable[str]) -> None:
        """Drop entries once the record that references them is committed (or abandoned)."""
        with self._mutex:
            if self._pid == os.getpid():
                self._append(f"-{e}" for e in entries)

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lease"
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process exits
        self._fd, self._pid = fd, os.getpid()

    def live_entries(self) -> set[str]:
        """Entries held by live processes; leases of dead ones are removed. Call it inside
        :meth:`collecting`."""
        held: Counter[str] = Counter()
        if not self.folder.is_dir():
            return set()
        for path in self.folder.glob("*.lease"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process is alive
                    for line in path.read_text(encoding="utf-8").splitlines():
                        held[line[1:]] += 1 if line.startswith("+") else -1
                    continue
                path.unlink(missing_ok=True)  # its process is gone
            finally:
                os.close(fd)
        return {entry for entry, count in held.items() if count > 0}
