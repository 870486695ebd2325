"""Alert sinks (backend kind ``alert_sink``): ``log``, ``file`` (JSON lines) and
``webhook`` (HTTP POST of JSON). A failing sink never loses the report: :func:`deliver`
returns the errors for the report to record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import attrs
from tether.backends import AlertSink
from tether.errors import ConfigError, DataError
from tether.validators import above


def _http_url(inst, attribute, value) -> None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"must start with http:// or https://, got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class LogSink(AlertSink):
    """Logs each alert (warning level, critical ones at error level)."""

    name: ClassVar[str] = "log"

    def send(self, alerts, *, context, report_id: str = "") -> None:
        for a in alerts:
            log = context.log.error if a["severity"] == "critical" else context.log.warning
            log("alert", rule=a["rule"], severity=a["severity"], action=a["action"], message=a["message"],
                report=report_id)


@attrs.frozen(kw_only=True)
class FileSink(AlertSink):
    """Appends one JSON line per alert to ``path``."""

    name: ClassVar[str] = "file"
    path: str

    def send(self, alerts, *, context, report_id: str = "") -> None:
        path = context.resolve_path(self.path) if context is not None else Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps({**a, "report": report_id}, sort_keys=True) + "\n" for a in alerts)


@attrs.frozen(kw_only=True)
class WebhookSink(AlertSink):
    """POSTs ``{"report": id, "alerts": [...]}`` as JSON to ``url``; non-2xx is a failure."""

    name: ClassVar[str] = "webhook"
    url: str = attrs.field(validator=_http_url)
    timeout: float = attrs.field(default=10.0, validator=above(0))
    headers: dict[str, str] = attrs.field(factory=dict)

    def send(self, alerts, *, context, report_id: str = "") -> None:
        import urllib.error
        import urllib.request

        body = json.dumps({"report": report_id, "alerts": alerts}, sort_keys=True).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise DataError(f"webhook {self.url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"webhook {self.url} unreachable: {getattr(exc, 'reason', exc)}") from None


def deliver(alerts, sinks: list[dict[str, Any]], *, backends, context, report_id: str) -> list[str]:
    """Send unsuppressed alerts to every sink; returns delivery errors (never raises for them:
    a chain's monitor built its sinks in ``preflight``, so a bad sink failed before the run)."""
    to_send = [a for a in alerts if not a["suppressed"]]
    errors = []
    if not to_send:
        return errors
    for i, cfg in enumerate(sinks):
        try:
            sink = backends.create("alert_sink", cfg.get("plugin", ""), cfg.get("params"),
                                   where=f"alerts.sinks[{i}]")
            sink.send(to_send, context=context, report_id=report_id)
        except Exception as exc:  # noqa: BLE001 - a sink failing must not lose the report
            errors.append(f"sink {cfg.get('plugin')}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return errors

