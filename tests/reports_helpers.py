"""Open an HTML page in real headless Chromium and report what happened.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON messages), so no WebSocket client is needed. A
page is loaded from its ``file://`` URL; the result lists console errors, uncaught
exceptions, log entries (CSP violations), every network request the page made, and per
chart (``div[data-figure]``) the size and the marks Plotly drew.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOAD_TIMEOUT = 120.0  # seconds; a bound on waiting, not an assertion on speed

PROBE = """(() => {
  const visible = el => {
    try { const b = el.getBBox(); return b.width > 0 || b.height > 0; } catch (e) { return false; } };
  const plots = [...document.querySelectorAll("div[data-figure]")].map(div => {
    const box = div.getBoundingClientRect();
    const marks = [...div.querySelectorAll(".cartesianlayer g.trace path, .cartesianlayer g.trace image, "
                                            + ".heatmaplayer image, g.errorbar path")].filter(visible).length;
    const holder = div.closest("[data-column]");
    return {name: div.getAttribute("data-figure"), column: holder ? holder.getAttribute("data-column") : null,
            width: box.width, height: box.height, svgs: div.querySelectorAll("svg.main-svg").length,
            traces: (div.data || []).map(t => ({type: t.type, name: t.name || null,
                                                  points: (t.z || t.y || t.x || []).length})),
            marks: marks};
  });
  return {rendered: document.body.getAttribute("data-rendered"), plots: plots,
          text: document.body.innerText, title: document.title};
})()"""


def require_chromium() -> str:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed, and CI=true requires it (apt-get install chromium)")
        pytest.skip("chromium is not installed; apt-get install chromium to run the HTML page checks")
    return CHROMIUM


class DevTools:
    """A Chromium process and its DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        import fcntl

        to_browser_r, self._write = os.pipe()
        self._read, from_browser_w = os.pipe()
        # The child's ends move above fd 10 first, so the dup2 calls below cannot clobber them.
        for fd in (to_browser_r, from_browser_w):
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            to_browser_r, from_browser_w = (high, from_browser_w) if fd == to_browser_r else (to_browser_r, high)

        def wire() -> None:  # runs in the child before exec: the pipe ends become fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
             "--window-size=1280,1800", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], LOAD_TIMEOUT)
            chunk = os.read(self._read, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe or stopped answering")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, *, session: str | None = None) -> dict[str, Any]:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, *, session: str) -> dict[str, Any]:
        def wanted(event: dict[str, Any]) -> bool:
            return event.get("method") == method and event.get("sessionId") == session

        for i, event in enumerate(self.events):
            if wanted(event):
                return self.events.pop(i)
        while True:
            event = self._receive()
            if wanted(event):
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._read)
        os.close(self._write)


def _evaluate(tools: DevTools, session: str, expression: str) -> Any:
    result = tools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        session=session)
    if "exceptionDetails" in result:
        raise RuntimeError(f"probe failed: {result['exceptionDetails']}")
    return result["result"].get("value")


WAIT_FOR_CHARTS = """new Promise(done => { const t0 = Date.now();
  (function poll() { const r = document.body.getAttribute("data-rendered");
    if (r || !document.querySelector("div[data-figure]") || Date.now() - t0 > 60000) done(r);
    else setTimeout(poll, 50); })(); })"""


class Chromium:
    """One headless Chromium; each :meth:`open` loads a page in a fresh tab."""

    def __init__(self, profile: Path) -> None:
        self.tools = DevTools(profile)

    def open(self, path: Path, *, script: str | None = None, screenshot: Path | None = None,
             clip: dict[str, float] | None = None) -> dict[str, Any]:
        """Load ``path``, wait until its charts are drawn, and return ``{"rendered", "plots",
        "text", "title", "errors", "requests"}`` (plus ``"script"``: the value of the JavaScript
        expression ``script``); optionally save a PNG screenshot of the whole page (or of
        ``clip``: x, y, width, height) to look at."""
        tools = self.tools
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Runtime", "Log", "Network", "Page"):
                tools.send(f"{domain}.enable", session=session)
            tools.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
            tools.wait_for("Page.loadEventFired", session=session)
            rendered = _evaluate(tools, session, WAIT_FOR_CHARTS)
            result = _evaluate(tools, session, PROBE)
            result["rendered"] = result["rendered"] or rendered
            if script is not None:
                result["script"] = _evaluate(tools, session, script)
            if screenshot is not None:
                params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
                if clip:
                    params["clip"] = {"scale": 1, **clip}
                shot = tools.send("Page.captureScreenshot", params, session=session)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            result["errors"], result["requests"] = _problems(
                [e for e in tools.events if e.get("sessionId") == session])
            return result
        finally:
            tools.send("Target.closeTarget", {"targetId": target})
            tools.events = [e for e in tools.events if e.get("sessionId") != session]

    def close(self) -> None:
        self.tools.close()


def chromium_session(tmp_path_factory):
    """Body of a test module's ``chromium`` fixture: one headless Chromium for its page checks."""
    require_chromium()
    browser = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.close()


def _problems(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    errors, requests = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log ({params['entry']['source']}): {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
    return errors, requests


def assert_offline_and_drawn(page: dict[str, Any], path: Path, *, charts: int | None = None) -> None:
    """No console error, no request but the page itself (and data:/blob: URLs), every chart
    drawn with a non-zero size and at least one visible mark."""
    assert page["errors"] == [], page["errors"]
    page_url = Path(path).resolve().as_uri()
    others = [u for u in page["requests"] if u != page_url and not u.startswith(("data:", "blob:"))]
    assert others == [], f"the page made network requests: {others}"
    if charts is not None:
        assert len(page["plots"]) == charts, [p["name"] for p in page["plots"]]
    if page["plots"]:
        assert page["rendered"] == "true", page["rendered"]
    for plot in page["plots"]:
        assert plot["width"] > 0 and plot["height"] > 0, plot
        assert plot["svgs"] >= 1 and plot["traces"], plot
        assert plot["marks"] > 0, f"chart {plot['name']} is blank: {plot}"
