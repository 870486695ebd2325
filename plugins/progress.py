"""Progress of long work (partitions of an engine's operation, rows of a batch scoring): a
``<unit> done`` log line every ``every`` units and, on a terminal, a live progress bar on
stderr.

::

    with Progress("profile", len(partitions), engine="dask", every=10) as progress:
        for part in partitions:
            ...
            progress.step()

The bar (``rich.progress``) is drawn only when :func:`tether.log.live_output` allows it
(stderr is a terminal, the logs are not JSON lines and the command was not asked for
``--json``); it is transient, so it disappears when the last unit is done, on
:meth:`Progress.close` or when the ``with`` block ends, on an error too. Inside another
live display on stderr (the spinner of ``tether run``) the bar is drawn below it rather
than over it. :meth:`Progress.step` may be called from other threads (e.g. a Dask
future's done-callback).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from tether.log import get_logger, live_output


class Progress:
    """Units (``partitions``, ``rows``) of one ``operation`` done out of ``total`` (``None``:
    unknown): a log line every ``every`` units (and at the last), and a live bar when
    :func:`tether.log.live_output` allows it. ``console`` (a ``rich.console.Console``) draws
    the bar there instead, whatever stderr is."""

    def __init__(self, operation: str, total: int | None, *, engine: str = "local", every: int = 10,
                 unit: str = "partitions", console: Any = None) -> None:
        self.operation, self.total, self.engine, self.every = operation, total, engine, max(1, every)
        self.unit = unit
        self.done = 0
        self.log = get_logger("tether.engine")
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        console = console if console is not None else _terminal_console()
        if console is not None and (total is None or total > 0):
            self._start_bar(console)

    def _start_bar(self, console) -> None:
        from rich.errors import LiveError
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn(self.unit), TimeElapsedColumn(), console=console, transient=True)
        self._task = bar.add_task(f"{self.engine}: {self.operation}", total=self.total)
        try:
            bar.start()
        except LiveError:  # rich before nested live displays, inside another one: no bar
            return
        self._bar = bar

    @property
    def drawing(self) -> bool:
        """Whether a bar is on the screen now."""
        return self._bar is not None

    def step(self, count: int = 1) -> None:
        """``count`` more units done; logs every ``every`` units and at the last."""
        with self._lock:
            before, self.done = self.done, self.done + count
            done, bar = self.done, self._bar
            if bar is not None:
                bar.update(self._task, completed=done, refresh=True)
        last = self.total is not None and before < self.total <= done
        if done // self.every > before // self.every or last:
            self.log.info(f"{self.unit} done", engine=self.engine, operation=self.operation, done=done,
                          total=self.total)
        if last:
            self.close()

    def close(self) -> None:
        """Take the bar off the screen (idempotent); the log lines stay."""
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def _terminal_console():
    """The console to draw a bar on, or ``None`` (see :func:`tether.log.live_output`). Inside
    a live display that redirects stderr (``rich``'s ``FileProxy``, the stage spinner of
    ``tether run``), its console, so the bar nests in that display instead of fighting it
    for the cursor."""
    if not live_output():
        return None
    from rich.console import Console
    from rich.file_proxy import FileProxy

    if isinstance(sys.stderr, FileProxy):
        return getattr(sys.stderr, "_FileProxy__console", None)  # rich keeps it private
    return Console(stderr=True)
