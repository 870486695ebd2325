"""Progress of partitioned work: log lines always, a live bar on stderr only on a terminal
(and not with JSON logs), gone when done or on an error."""

from __future__ import annotations

import io
import sys

import pytest


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def log_format():
    """Set the log format for a test; the default configuration again after."""
    from tether.log import configure_logging

    yield lambda fmt="auto", level="warning": configure_logging(fmt, level=level)
    configure_logging(level="warning")


def use_terminal(monkeypatch) -> _Terminal:
    """stderr replaced by a terminal that records what is drawn on it (in the test itself:
    pytest sets its own stderr back after the fixtures)."""
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    return screen


def bar_console():
    from rich.console import Console

    return Console(force_terminal=True, file=_Terminal(), width=100)


def test_log_lines_every_few_partitions_and_at_the_last(log_format):
    from structlog.testing import capture_logs
    from tether.plugins.progress import Progress

    log_format(level="info")  # progress lines are info
    with capture_logs() as logs:
        with Progress("profile", 5, engine="dask", every=2) as progress:
            for _ in range(5):
                progress.step()
    lines = [e for e in logs if e["event"] == "partitions done"]
    assert [e["done"] for e in lines] == [2, 4, 5]
    assert {(e["engine"], e["operation"], e["total"], e["log_level"]) for e in lines} == {("dask", "profile", 5,
                                                                                          "info")}


def test_no_bar_when_stderr_is_not_a_terminal(capsys, log_format):
    from tether.plugins.progress import Progress

    log_format("console")
    assert not sys.stderr.isatty()
    with Progress("read", 3, engine="dask") as progress:
        assert not progress.drawing
        for _ in range(3):
            progress.step()
    assert capsys.readouterr().err == ""


def test_a_bar_is_drawn_on_a_terminal_and_goes_when_done(monkeypatch, log_format):
    from tether.plugins.progress import Progress

    terminal = use_terminal(monkeypatch)
    log_format("console")
    progress = Progress("profile", 4, engine="dask", every=10)
    assert progress.drawing and sys.stderr is not terminal  # log lines now print above the bar
    for _ in range(4):
        progress.step()
    assert not progress.drawing  # closed itself at the last partition
    assert sys.stderr is terminal  # the live display gave stderr back
    drawn = terminal.getvalue()
    assert "dask: profile" in drawn and "4/4" in drawn and "partitions" in drawn
    assert drawn.rstrip("\n").endswith("\x1b[2K")  # transient: the bar's line erased


def test_no_bar_with_json_logs_even_on_a_terminal(monkeypatch, log_format):
    from tether.plugins.progress import Progress

    terminal = use_terminal(monkeypatch)
    log_format("json")
    with Progress("score", 2, engine="dask") as progress:
        assert not progress.drawing
        progress.step(2)
    assert "dask: score" not in terminal.getvalue()


def test_the_bar_is_closed_on_an_error():
    from tether.plugins.progress import Progress

    console, before = bar_console(), sys.stderr
    with pytest.raises(RuntimeError, match="worker lost"):
        with Progress("read", 10, engine="dask", console=console) as progress:
            assert progress.drawing
            progress.step()
            raise RuntimeError("worker lost")
    assert not progress.drawing and sys.stderr is before
    drawn = console.file.getvalue()
    assert "dask: read" in drawn and "1/10" in drawn
    assert drawn.rstrip("\n").endswith("\x1b[2K")
    progress.close()  # closing again is harmless


def test_the_bar_nests_in_a_live_display_already_on_stderr(monkeypatch, log_format):
    from rich.console import Console
    from tether.plugins.progress import Progress

    terminal = use_terminal(monkeypatch)
    log_format("console")
    status = Console(stderr=True).status("stage 2/3: monitor")  # as `tether run` shows its stages
    status.start()
    try:
        proxy = sys.stderr
        with Progress("profile", 3, engine="dask", every=1) as progress:
            assert progress.drawing
            progress.step()
            progress.step()
        assert sys.stderr is proxy  # the outer display still owns stderr
    finally:
        status.stop()
    drawn = terminal.getvalue()
    assert "stage 2/3: monitor" in drawn and "dask: profile" in drawn and "2/3" in drawn


def test_a_json_command_draws_no_bar_and_the_next_command_may(log_format):
    import click
    from click.testing import CliRunner
    from tether.commands import json_option
    from tether.plugins.progress import Progress

    log_format("console")
    drawn = []

    @click.command()
    @json_option
    def command(json_output):
        real, sys.stderr = sys.stderr, _Terminal()  # the command's stderr is a terminal
        try:
            progress = Progress("read", 2, engine="dask")
            drawn.append(progress.drawing)
            progress.close()
        finally:
            sys.stderr = real

    for args in (["--json"], [], ["--json"], []):
        assert CliRunner().invoke(command, args).exit_code == 0
    assert drawn == [False, True, False, True]


def test_rows_are_counted_in_steps_of_any_size(log_format):
    from structlog.testing import capture_logs
    from tether.plugins.progress import Progress

    log_format(level="info")
    with capture_logs() as logs:
        with Progress("score", 2_500_000, unit="rows", every=1_000_000) as progress:
            for _ in range(5):
                progress.step(500_000)
    lines = [e for e in logs if e["event"] == "rows done"]
    assert [e["done"] for e in lines] == [1_000_000, 2_000_000, 2_500_000]
