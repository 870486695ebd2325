"""The ``jsonl`` trace sink: spans appended as JSON lines, one file per UTC day.

Files are ``<path>/spans-YYYYMMDD.jsonl`` (default path: ``<workspace>/traces``); each
batch is written with one ``write`` call and flushed, so a reader sees whole lines. A line
cut short by a crash is skipped when reading, with a count.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import TraceSink
from tether.errors import DataError


@attrs.define(kw_only=True)
class JsonlSink(TraceSink):
    """Spans as JSON lines under ``path`` (default ``<workspace>/traces``)."""

    name: ClassVar[str] = "jsonl"
    workspace: str = ".tether"
    path: str | None = None
    _file: Any = attrs.field(default=None, init=False, repr=False)
    _day: str = attrs.field(default="", init=False, repr=False)

    @property
    def folder(self) -> Path:
        return Path(self.path) if self.path else Path(self.workspace) / "traces"

    def open(self, *, host: Any = None) -> None:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise DataError(f"trace folder '{folder}' is a file; point the jsonl sink's path at a folder")

    def write(self, spans: list[dict[str, Any]]) -> None:
        day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
        if self._file is None or day != self._day:
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = open(self.folder / f"spans-{day}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._day = day
        self._file.write("".join(json.dumps(s, separators=(",", ":"), ensure_ascii=False) + "\n" for s in spans))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"jsonl:{self.folder}"


def read_spans(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every span in a JSONL file or a folder of them (oldest file first); lines that are
    not whole JSON objects (a write cut short) are skipped."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no trace file or folder at '{path}'")
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    for file in files:
        with open(file, encoding="utf-8") as handle:
            for line in handle:
                try:
                    span = json.loads(line)
                except ValueError:
                    continue
                if isinstance(span, dict) and "trace_id" in span and "span_id" in span:
                    yield span
