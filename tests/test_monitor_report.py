"""The HTML report is self-contained and renders its plots in real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tether.context import RunContext
from tether.plugins.monitoring.monitor import DriftMonitor
from tether.plugins.monitoring.params import ModelParams, WindowParams
from tether.plugins.monitoring.profiles import profile_batches
from tether.plugins.monitoring.report import write_html

from tests.conftest import IN_CI

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dom(path, tmp_path) -> str:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed, and CI=true requires it (apt-get install chromium)")
        pytest.skip("chromium is not installed; apt-get install chromium to run the HTML report check")
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--dump-dom", path.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def report(host):
    rng = np.random.default_rng(0)

    def frame(n, shift, start, days):
        return pd.DataFrame({
            "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s"),
            "amount": rng.normal(100 + shift, 15, n), "items": rng.poisson(2, n),
            "channel": rng.choice(["web", "app", "store"], n), "score": rng.random(n)})

    ref = profile_batches([pa.Table.from_pandas(frame(6_000, 0, "2026-01-01", 14))], time_column="ts")
    cur = pd.concat([frame(1_000, 0, "2026-02-01", 1), frame(1_000, 5, "2026-02-02", 1),
                     frame(1_000, 30, "2026-02-03", 1)], ignore_index=True)
    cur.loc[:50, "channel"] = "</script><b>kiosk</b>"  # must be escaped, not break the page
    monitor = DriftMonitor(windows=WindowParams(every="daily"), time_column="ts", model=ModelParams(score="score"))
    return monitor.check(reference=ref, current_batches=[pa.Table.from_pandas(cur)],
                         context=RunContext(host=host, workspace=None), reference_id="ref", current_id="cur",
                         send=False, launch=False)


def test_html_report_is_offline_and_renders_plots_in_chromium(report, tmp_path):
    path = write_html(report, tmp_path / "report.html")
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report must not load anything"
    assert "<script src" not in html and "@import" not in html
    dom = chromium_dom(path, tmp_path)
    assert 'data-rendered="true"' in dom
    plotted = {p["column"] for p in report.details["plots"]}
    assert plotted == {"amount", "items", "channel", "score"}
    for column in plotted:  # one SVG per column, drawn by the page's script
        assert re.search(rf'<svg[^>]*class="dist-plot"[^>]*data-column="{column}"', dom), column
    assert dom.count('class="bar-cur"') == sum(len(p["current"]) for p in report.details["plots"])
    assert 'class="trend-plot"' in dom and dom.count('class="trend-point"') == 3
    assert dom.count('class="drift-row"') == len(report.results)
    assert len(re.findall(r'<li class="\w+ alert">', dom)) == len(report.alerts) > 0
    assert "&lt;/script&gt;&lt;b&gt;kiosk" in dom  # shown as text, not markup
    assert "amount" in report.details["drifted_columns"]


def test_json_report_carries_the_same_data(report, tmp_path):
    from tether import serde

    data = json.loads(serde.dumps(report))["data"]
    assert data["verdict"] in ("warning", "critical")
    assert {r["column"] for r in data["results"]} == {"amount", "items", "channel", "score"}
    assert [w["window"] for w in data["details"]["windows"]] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert data["details"]["windows"][2]["drifted"] == ["amount"]
    assert data["details"]["model"]["estimated"]["accuracy"] > 0
