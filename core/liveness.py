"""Telling a run whose process died from one still going.

A run records the host, pid and (on Linux) the start time of the process running it,
and the runner writes the run's stages as they finish. A run still ``running`` whose
process is gone from this host is marked ``crashed``, keeping the stages it completed
(and so what it produced), when the runs are next listed or another run starts. Runs of
other hosts are left alone: their processes cannot be checked from here.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import attrs

from .records import utcnow


def _start_time(pid: int) -> float | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """``host``, ``pid`` and ``process_started`` of the current process, for a Run record."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "process_started": _start_time(pid)}


def is_alive(run: Any) -> bool:
    """Whether the process that recorded ``run`` may still be running it."""
    if run.pid is None or run.host != socket.gethostname():
        return True  # unknown or elsewhere: assume alive
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    started = _start_time(run.pid)
    return run.process_started is None or started is None or started == run.process_started


def mark_crashed(store: Any, runs: list[Any]) -> list[Any]:
    """``runs`` with every dead ``running`` run marked ``crashed`` (and stored so)."""
    out = []
    for run in runs:
        if run.status == "running" and not is_alive(run):
            done = [s.id for s in run.stages if s.status in ("succeeded", "reused")]
            error = (f"the process ({run.host} pid {run.pid}) ended without finishing the run; "
                     f"completed stages: {', '.join(done) or 'none'}")
            run = attrs.evolve(run, status="crashed", error=error, ended_at=utcnow())
            store.put(run, replace=True)
        out.append(run)
    return out
