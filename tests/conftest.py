"""Shared fixtures: a fresh plugin host per test, a workspace in tmp_path, a CLI runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def host():
    """A fresh plugin host with the built-ins only (no entry points)."""
    from tether.manager import PluginHost

    return PluginHost(entry_points=False)


@pytest.fixture(scope="module")
def cluster():
    """A Dask ``LocalCluster`` of 2 worker processes (1 thread each), one per test module."""
    pytest.importorskip("distributed")
    from engines_helpers import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.close()


@pytest.fixture(params=["local", "dask"])
def engine(request, host):
    """Each execution engine in turn: ``local``, then ``dask`` on the module's cluster."""
    params = {"address": request.getfixturevalue("cluster").scheduler_address} if request.param == "dask" else {}
    engine = host.backends.create("engine", request.param, params)
    yield engine
    engine.close()


@pytest.fixture
def workspace(tmp_path, host):
    from tether.workspace import Workspace

    ws = Workspace.open(host, tmp_path / ".tether")
    yield ws
    ws.close()


@pytest.fixture
def context(host, workspace):
    from tether.context import RunContext

    return RunContext(host=host, workspace=workspace)


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.exit_code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __repr__(self) -> str:
        return f"<CliResult {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def tether_cli(tmp_path):
    """Run the real ``tether`` entry point in a subprocess (cwd: tmp_path by default)."""

    def run(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> CliResult:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "tether", *map(str, args)], cwd=cwd or tmp_path,
                              capture_output=True, text=True, env=full_env, timeout=timeout)
        return CliResult(proc)

    return run


def server_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip outside CI when a server is down; in CI (CI=true) fail instead."""
    if server_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(f"{message}; start it to run this test")


def traced_peak(fn) -> tuple[object, int]:
    """(result, peak bytes Python and numpy allocated while ``fn`` ran, above what was held before)."""
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
