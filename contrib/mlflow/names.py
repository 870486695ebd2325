"""The MLflow client for a tracking URI, and tether names made valid for MLflow.

MLflow accepts metric, param and tag keys of letters, digits and ``_ - . / : space``
only; tether's per-slice metrics (``roc_auc[region=north]``) and free-form params do
not fit, so every other character becomes ``_`` (trailing ones dropped). Values longer
than MLflow keeps are cut, ending in ``...``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from tether.errors import ConfigError

_INVALID = re.compile(r"[^\w\-./: ]")
PARAM_VALUE_MAX = 6000
TAG_VALUE_MAX = 8000
KEY_MAX = 250


def mlflow_key(key: str) -> str:
    """``key`` with every character MLflow refuses replaced by ``_``."""
    cleaned = _INVALID.sub("_", str(key)).rstrip("_") or "_"
    return cleaned.replace("..", "._")[:KEY_MAX]


def cut(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def resolve_uri(tracking_uri: str, where: str = "tracking_uri") -> str:
    """The tracking URI given, else ``$MLFLOW_TRACKING_URI``; one of them is required."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ConfigError(f"{where}: required (e.g. sqlite:///mlflow.db), or set MLFLOW_TRACKING_URI", key=where)
    return uri


def display_uri(uri: str) -> str:
    """``uri`` for messages: a password in it (``http://user:secret@host``) becomes ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client_for(uri: str) -> Any:
    """An ``MlflowClient`` whose tracking and registry are both ``uri``. MLflow's notes
    about creating its own database tables are kept out of tether's output."""
    import logging

    from mlflow import MlflowClient

    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def default_artifact_location(uri: str) -> str | None:
    """For a ``sqlite:///`` tracking URI, artifacts go beside the database file
    (``<dir>/mlartifacts``) rather than into the current directory."""
    if not uri.startswith("sqlite:///"):
        return None
    db = uri[len("sqlite:///"):]
    folder = os.path.dirname(os.path.abspath(db))
    return "file://" + os.path.join(folder, "mlartifacts")


def one_line(exc: BaseException) -> str:
    """An MLflow error in one line (MLflow's messages can span several)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text[:300] or type(exc).__name__
