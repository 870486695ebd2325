"""A server: the prediction log, the router, the control loop and the HTTP app, run on
uvicorn (in the foreground for ``tether serve``, or in a thread for tests and embedding)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import attrs
from tether.errors import ConfigError
from tether.names import check_name
from tether.validators import above, at_least, one_of

from .predlog import LOG_INPUTS


def _port(inst, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"must be a TCP port (0-65535; 0 picks a free one), got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class ServeSettings:
    """What ``tether serve`` takes (each checked before anything starts)."""

    workspace: str = ".tether"
    environment: str = attrs.field(default="production")
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000, validator=_port)
    log_inputs: str = attrs.field(default="hash", validator=one_of(*LOG_INPUTS))
    log_dir: str | None = None  # default: <workspace>/predictions/<environment>
    roll_rows: int = attrs.field(default=10_000, validator=at_least(1))
    roll_seconds: float = attrs.field(default=60.0, validator=above(0))
    reload_interval: float = attrs.field(default=1.0, validator=above(0))

    @environment.validator
    def _environment(self, attribute, value) -> None:
        check_name(value, "--environment", what="environment")

    @property
    def log_folder(self) -> Path:
        return Path(self.log_dir) if self.log_dir else Path(self.workspace) / "predictions" / self.environment


class Server:
    """Everything one ``tether serve`` runs; ``start()`` in a thread or ``run()`` blocking."""

    def __init__(self, host: Any, settings: ServeSettings) -> None:
        from .app import create_app
        from .control import Controller
        from .predlog import PredictionLog
        from .routing import Router

        self.settings = settings
        self.log = PredictionLog(settings.log_folder, log_inputs=settings.log_inputs, roll_rows=settings.roll_rows,
                                 roll_seconds=settings.roll_seconds)
        self.router = Router(environment=settings.environment, log=self.log)
        self.controller = Controller(host=host, workspace=settings.workspace, environment=settings.environment,
                                     router=self.router, reload_interval=settings.reload_interval)
        self.app = create_app(self.router, self.controller, self.log)
        self._uvicorn = None
        self._thread: threading.Thread | None = None

    def _config(self):
        import uvicorn

        return uvicorn.Config(self.app, host=self.settings.host, port=self.settings.port, log_level="warning",
                              access_log=False, lifespan="off")

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the free one picked for port 0)."""
        servers = getattr(self._uvicorn, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return sock.getsockname()[1]
        return self.settings.port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        """Start everything, uvicorn in a thread; return once it accepts connections."""
        import uvicorn

        self.log.start()
        self.controller.start()
        self._uvicorn = uvicorn.Server(self._config())
        self._thread = threading.Thread(target=self._uvicorn.run, name="tether-serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the server could not listen on {self.settings.host}:{self.settings.port}")
            time.sleep(0.02)
        return self

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C, SIGTERM)."""
        import uvicorn

        self.log.start()
        self.controller.start()
        self._uvicorn = uvicorn.Server(self._config())
        try:
            self._uvicorn.run()
        except SystemExit:  # uvicorn exits when it cannot bind; say so in one line
            if not self._uvicorn.started:
                raise ConfigError(f"cannot listen on {self.settings.host}:{self.settings.port} (in use, or "
                                  "not an address of this machine); pick another --host/--port") from None
            raise
        finally:
            self._shutdown()

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._shutdown()

    def _shutdown(self) -> None:
        self.controller.stop()
        self.router.drain_mirror()
        self.router.close()
        self.log.close()
