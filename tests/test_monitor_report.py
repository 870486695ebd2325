"""The HTML report is self-contained and renders its plots in real headless Chromium."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tether.context import RunContext
from tether.plugins.monitoring.monitor import DriftMonitor
from tether.plugins.monitoring.params import ModelParams, WindowParams
from tether.plugins.monitoring.profiles import profile_batches
from tether.plugins.monitoring.report import write_html

from tests.reports_helpers import assert_offline_and_drawn, chromium_session


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    yield from chromium_session(tmp_path_factory)


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


def test_html_report_is_offline_and_renders_plots_in_chromium(chromium, report, tmp_path):
    path = write_html(report, tmp_path / "report.html")
    html = path.read_text()
    assert html.count("<script>") == 2 and "<script src" not in html  # plotly.js inlined once, no CDN
    page = chromium.open(path, script="[...document.querySelectorAll('[data-column=channel] .xtick text')]"
                                      ".map(t => t.textContent)")
    plotted = {p["column"]: p for p in report.details["plots"]}
    assert set(plotted) == {"amount", "items", "channel", "score"}
    assert_offline_and_drawn(page, path, charts=len(plotted) + 1)  # + the trend
    charts = {p["name"]: p for p in page["plots"]}
    for plot in page["plots"]:
        if plot["column"] is None:
            continue
        data = plotted[plot["column"]]  # one chart per column: reference and current bars
        assert [t["name"] for t in plot["traces"]] == ["reference", "current"]
        assert [t["points"] for t in plot["traces"]] == [len(data["reference"]), len(data["current"])]
    assert {p["column"] for p in page["plots"]} - {None} == set(plotted)
    assert charts["trend"]["traces"][0]["points"] == 3 == len(report.details["windows"])
    text = page["text"]
    assert sum(line.startswith(r.column + "\t") for r in report.results for line in text.splitlines()) \
        == len(report.results)
    assert len([line for line in text.splitlines() if "] " in line and " → " in line]) == len(report.alerts) > 0
    assert "</script><b>kiosk</b>" in text  # shown as text, not markup
    assert "</script><b>kiosk</b>" in page["script"]  # also on the chart's axis, not read as Plotly markup
    assert "&lt;/script&gt;&lt;b&gt;kiosk" in html
    assert "amount" in report.details["drifted_columns"]


def test_json_report_carries_the_same_data(report, tmp_path):
    from tether import serde

    data = json.loads(serde.dumps(report))["data"]
    assert data["verdict"] in ("warning", "critical")
    assert {r["column"] for r in data["results"]} == {"amount", "items", "channel", "score"}
    assert [w["window"] for w in data["details"]["windows"]] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert data["details"]["windows"][2]["drifted"] == ["amount"]
    assert data["details"]["model"]["estimated"]["accuracy"] > 0
