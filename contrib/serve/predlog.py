"""The prediction log: one row per answered prediction, written as Parquet files by a
background thread, so the request path only enqueues.

Files are rolled when ``roll_rows`` rows are buffered or the oldest buffered row is
``roll_seconds`` old, and each appears atomically (written to a hidden temporary file in
the same folder, then renamed), so a reader never sees half a file. The folder reads as
one table with ``tether monitor FOLDER --reference PROFILE`` (a folder of Parquet files is
a window) with no conversion. Columns (docs/serving.md):

``timestamp`` (UTC), ``request_id``, ``environment``, ``deployment_id``, ``strategy``,
``arm``, ``model_version``, ``status`` (``ok``, ``fallback``), ``error``, ``latency_ms``,
``input_sha256``, the model's outputs (``prediction``, ``score``...) and, with
``log_inputs: full``, every input field under its own name (a field named like one of
the columns above is written as ``input_<name>``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

LOG_INPUTS = ("full", "hash", "none")

META_COLUMNS = ("timestamp", "request_id", "environment", "deployment_id", "strategy", "arm", "model_version",
                "status", "error", "latency_ms", "input_sha256")


def input_digest(row: dict[str, Any]) -> str:
    """SHA-256 of a request row as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def meta_schema():
    import pyarrow as pa

    return pa.schema([("timestamp", pa.timestamp("us", tz="UTC")), ("request_id", pa.string()),
                      ("environment", pa.string()), ("deployment_id", pa.string()), ("strategy", pa.string()),
                      ("arm", pa.string()), ("model_version", pa.string()), ("status", pa.string()),
                      ("error", pa.string()), ("latency_ms", pa.float64()), ("input_sha256", pa.string())])


class PredictionLog:
    """Buffers log entries and writes them as Parquet files in ``folder``.

    An entry is a dict with the meta columns (``timestamp`` as epoch seconds), ``inputs``
    (the request row) and ``outputs`` (the model's answer for it); :meth:`add` never blocks:
    when ``max_queue`` entries wait, new ones are counted in ``dropped`` instead.
    """

    def __init__(self, folder: str | os.PathLike, *, log_inputs: str = "hash", roll_rows: int = 10_000,
                 roll_seconds: float = 60.0, max_queue: int = 100_000) -> None:
        self.folder = Path(folder)
        self.log_inputs = log_inputs
        self.roll_rows, self.roll_seconds = roll_rows, roll_seconds
        self.dropped = 0
        self.written_rows = 0
        self.files = 0
        self.last_error: str | None = None
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="tether-prediction-log", daemon=True)
        self._started = False

    def start(self) -> PredictionLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._started = True
        return self

    def add(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                self.dropped += 1

    def flush(self, timeout: float = 30.0) -> None:
        """Write everything added so far (blocks until it is on disk)."""
        if not self._started:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
            self._started = False

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        buffer: list[dict[str, Any]] = []
        oldest = 0.0
        while True:
            wait = max(0.05, self.roll_seconds - (time.monotonic() - oldest)) if buffer else 1.0
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = "tick"
            if isinstance(item, dict):
                if not buffer:
                    oldest = time.monotonic()
                buffer.append(item)
            due = buffer and (len(buffer) >= self.roll_rows or time.monotonic() - oldest >= self.roll_seconds)
            if item is None or isinstance(item, threading.Event) or due:
                self._write(buffer)
                buffer = []
            if isinstance(item, threading.Event):
                item.set()
            if item is None:
                return

    def _write(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        import pyarrow.parquet as pq

        try:
            table = self.table(entries)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            name = f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = self.folder / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, self.folder / name)
            self.written_rows += table.num_rows
            self.files += 1
        except Exception as exc:  # the log never takes the server down; /health reports it
            self.last_error = f"{type(exc).__name__}: {exc}"

    def table(self, entries: list[dict[str, Any]]):
        """The Arrow table of ``entries``: meta columns typed, then outputs, then inputs."""
        import pyarrow as pa

        schema = meta_schema()
        columns: dict[str, Any] = {}
        for field in schema:
            values = [e.get(field.name) for e in entries]
            if field.name == "timestamp":
                values = [dt.datetime.fromtimestamp(v, dt.timezone.utc) for v in values]
            elif field.name == "input_sha256" and self.log_inputs != "none":
                values = [input_digest(e["inputs"]) for e in entries]
            columns[field.name] = pa.array(values, type=field.type)
        self._add_nested(columns, entries, "outputs")
        if self.log_inputs == "full":
            self._add_nested(columns, entries, "inputs")
        return pa.table(columns)

    @staticmethod
    def _add_nested(columns: dict[str, Any], entries: list[dict[str, Any]], part: str) -> None:
        import pyarrow as pa

        names = list(dict.fromkeys(k for e in entries for k in e.get(part) or {}))
        for name in names:
            values = [(e.get(part) or {}).get(name) for e in entries]
            column = name if name not in columns else f"{'input' if part == 'inputs' else 'output'}_{name}"
            try:
                columns[column] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as JSON text
                columns[column] = pa.array([None if v is None else json.dumps(v, default=str) for v in values])
