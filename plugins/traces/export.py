"""Writing traces to a file: JSONL spans, or one OTLP/JSON document (extra ``rag``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, chunks) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_export(traces: list[Any], out: str | Path, fmt: str) -> int:
    """Write every span of ``traces`` to ``out`` (atomically) as ``jsonl`` or ``otlp-json``;
    the number of spans written."""
    spans = [span for trace in reversed(traces) for span in trace.spans]  # oldest trace first
    if fmt == "jsonl":
        _atomic_write(Path(out), (json.dumps(s, separators=(",", ":"), ensure_ascii=False) + "\n" for s in spans))
    elif fmt == "otlp-json":
        from tether.errors import PluginError
        from tether.extras import install_hint

        try:
            from tether.contrib.otlp.exporter import otlp_json

            document = otlp_json(spans)
        except ImportError:
            raise PluginError(f"--format otlp-json needs the OpenTelemetry SDK: {install_hint(['rag'])}") from None
        _atomic_write(Path(out), [json.dumps(document, indent=1)])
    else:  # pragma: no cover - click restricts the choice
        raise ValueError(fmt)
    return len(spans)
