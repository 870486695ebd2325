"""The evaluation's HTML page, written atomically (rendered by ``tether.plugins.reports``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def write_html(path: str | Path, evaluation: Any, lineage: dict[str, Any]) -> Path:
    """Render ``evaluation`` (the record) with its ``lineage`` and write it to ``path``."""
    from tether import serde
    from tether.plugins.reports import evaluation_html

    text = evaluation_html(serde.to_dict(evaluation), lineage=lineage)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)
    return target
