"""HTML pages: the shared environment escapes and is strict, every page works offline in real
headless Chromium, and each chart is drawn (not blank) with the record's values."""

from __future__ import annotations

import json
import re

import jinja2
import numpy as np
import pandas as pd
import pytest
from tether import serde
from tether.plugins.reports import charts, evaluation_html, render_page, write_page
from tether.plugins.reports.pages import environment, num

from tests.reports_helpers import assert_offline_and_drawn, chromium_session


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    yield from chromium_session(tmp_path_factory)


HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


# --- the environment --------------------------------------------------------------------------


def test_environment_autoescapes_and_rejects_undefined_names():
    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>&") == "&lt;b&gt;&amp;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ typo }}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ d.missing }}").render(d={})


def test_numbers_are_formatted_for_people():
    assert [num(None), num(4000.0), num(1234567), num(0.123456), num(float("nan")), num(True)] == \
        ["", "4,000", "1,234,567", "0.1235", "n/a", "true"]


def test_chart_labels_from_the_data_are_escaped_and_long_ones_shortened():
    long = "<b>" + "x" * 40
    figure = charts.bars([long, "a&b"], {"rows <n>": [1, 2]})
    assert list(figure.data[0].x) == ["&lt;b&gt;" + "x" * 40, "a&amp;b"] and figure.data[0].name == "rows &lt;n&gt;"
    assert figure.layout.xaxis.ticktext[0] == "&lt;b&gt;" + "x" * 20 + "\u2026"
    assert list(charts.bars([1, 2.5], {"n": [1, 2]}).data[0].x) == [1.0, 2.5]  # numbers keep a numeric axis


def test_a_chart_must_be_placed_and_placed_charts_must_exist():
    figure = charts.bars(["a"], {"n": [1]})
    with pytest.raises(KeyError, match="does not place the charts"):
        render_page("base.html", title="t", figures={"lost": figure})


def test_page_without_charts_carries_no_script(tmp_path):
    html = evaluation_html({"id": "eval-old", "model_id": "m", "feature_set_id": "f", "split": "test",
                            "evaluator": "classification", "metrics": {"accuracy": 0.9, "rows": 10},
                            "passed": False, "gates": {"accuracy": {"min": 0.95}}})
    assert "<script" not in html
    assert "eval-old" in html and "0.9" in html and "0.95" in html  # metrics and the legacy gate table
    for section in ("curves", "classes", "residuals", "slices", "examples"):
        assert f'id="{section}"' not in html  # omitted, not shown empty


# --- the checker itself -----------------------------------------------------------------------


def test_the_chromium_check_sees_errors_requests_and_blank_charts(chromium, tmp_path):
    path = tmp_path / "broken.html"
    path.write_text('<!doctype html><body><div data-figure="empty" style="width:200px;height:100px"></div>'
                    '<img src="http://127.0.0.1:9/pixel.png"><script>console.error("boom")</script></body>')
    page = chromium.open(path)
    assert any("boom" in e for e in page["errors"])
    assert "http://127.0.0.1:9/pixel.png" in page["requests"]
    assert page["plots"][0]["marks"] == 0
    with pytest.raises(AssertionError):
        assert_offline_and_drawn(page, path)


# --- user strings -----------------------------------------------------------------------------


def test_user_strings_are_escaped_in_tables_and_charts(chromium, tmp_path):
    data = binary_record(slice_column=HOSTILE, segment=HOSTILE)
    html = evaluation_html(data, lineage={HOSTILE: HOSTILE})
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    path = write_page(tmp_path / "hostile.html", html)
    page = chromium.open(path, script="[window.__pwned === undefined, [...document.querySelectorAll("
                                      "'.plot text')].map(t => t.textContent).join('|')]")
    assert_offline_and_drawn(page, path)  # an <img src=x> that became markup would be a request
    untouched, chart_text = page["script"]
    assert untouched
    assert HOSTILE in page["text"]  # shown literally in the tables
    assert f"roc_auc by {HOSTILE}" in chart_text  # and in the chart title, not read as Plotly markup


# --- a plugin's own page ----------------------------------------------------------------------


def test_a_plugin_page_extends_the_base_template(chromium, tmp_path, monkeypatch):
    package = tmp_path / "pkg" / "weekly_report"
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates" / "weekly.html").write_text(
        '{% extends "base.html" %}\n{% import "macros.html" as m with context %}\n'
        '{% block content %}<h2>Orders</h2>{{ m.table(["day", "orders"], rows, numeric=(1,)) }}'
        '{{ m.figure("orders", "orders per day") }}{% endblock %}\n')
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    figure = charts.bars(["mon", "tue", "wed"], {"orders": [3, 5, 2]}, y="orders")
    html = render_page("weekly.html", package="weekly_report", title="Weekly <orders>", rows=[["mon", 3]],
                       figures={"orders": figure})
    with pytest.raises(KeyError, match="places chart 'orders', which the page does not define"):
        render_page("weekly.html", package="weekly_report", title="t", rows=[])
    path = write_page(tmp_path / "weekly.html", html)
    page = chromium.open(path)
    assert_offline_and_drawn(page, path, charts=1)
    assert page["title"] == "Weekly <orders>" and page["plots"][0]["traces"] == [
        {"type": "bar", "name": "orders", "points": 3}]


# --- the leakage page -------------------------------------------------------------------------


def test_leakage_page_shows_findings_splits_and_charts(chromium, tmp_path):
    from tether.plugins.leakage.audit import audit_frame
    from tether.plugins.leakage.report import findings_html

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer": rng.integers(0, 300, 1200), "x": rng.normal(size=1200),
                          "y": rng.integers(0, 2, 1200),
                          "split": np.where(np.arange(1200) % 5 == 0, "test", "train")})
    findings, summary = audit_frame(frame, split_column="split", entity_column="customer", label="y")
    assert "entity_overlap" in {f.check for f in findings}
    html = findings_html(findings, title="Leakage audit of <d.csv>", summary=summary)
    style = html[html.index("<style>"):html.index("</style>")]
    assert "{{" not in style and "}}" not in style  # the old page's CSS had doubled braces
    path = write_page(tmp_path / "leakage.html", html)
    page = chromium.open(path, script="getComputedStyle(document.querySelector("
                                      "'tr.finding.error td')).backgroundColor")
    assert_offline_and_drawn(page, path, charts=2)
    assert page["script"] == "rgb(255, 241, 240)"  # the failing row's style applies
    charts_by_name = {p["name"]: p for p in page["plots"]}
    assert charts_by_name["rows"]["traces"][0]["points"] == 2  # train, test
    assert [t["name"] for t in charts_by_name["class_balance"]["traces"]] == list(summary["class_balance"])
    lines = page["text"].splitlines()
    assert sum(line.startswith(("error\t", "warning\t")) for line in lines) == len(findings)
    assert any(line.startswith(f"train\t{summary['rows']['train']:,}") for line in lines)


# --- evaluation pages -------------------------------------------------------------------------


def envelope(data: dict) -> dict:
    """The record's JSON form, checked against the real ``Evaluation`` record first."""
    record = serde.from_dict({"kind": "evaluation", "schema_version": 1, "data": data})
    return serde.to_dict(record)


def binary_record(*, slice_column: str = "region", segment: str = "south") -> dict:
    fpr = [0.0, 0.1, 0.3, 0.6, 1.0]
    return envelope({
        "id": "eval-bin", "model_id": "mod-1", "feature_set_id": "fs-1", "split": "test",
        "evaluator": "classification", "task": "binary", "label": "churned", "source": "stage",
        "snapshot_id": "snap-1", "passed": False, "classes": ["0", "1"],
        "metrics": {"roc_auc": 0.8125, "average_precision": 0.7093, "f1": 0.662, "recall": 0.7438,
                    "log_loss": 0.498, "accuracy": 0.7333, "rows": 4000.0},
        "intervals": {"roc_auc": [0.7991, 0.8268], "f1": [0.641, 0.6803]},
        "threshold": {"value": 0.39, "method": "maximize", "metric": "f1", "split": "validation"},
        "per_class": [{"class": "0", "precision": 0.84, "recall": 0.7276, "f1": 0.7797, "support": 2595},
                      {"class": "1", "precision": 0.5965, "recall": 0.7438, "f1": 0.662, "support": 1405}],
        "confusion": {"labels": ["0", "1"], "matrix": [[1888, 707], [360, 1045]]},
        "curves": {"roc": {"fpr": fpr, "tpr": [0.0, 0.45, 0.75, 0.92, 1.0], "thresholds": [1, .8, .5, .3, 0]},
                   "pr": {"precision": [1.0, 0.8, 0.6, 0.35], "recall": [0.0, 0.4, 0.75, 1.0],
                          "thresholds": [0.9, 0.6, 0.3]}},
        "calibration": {"strategy": "uniform", "bins": 3, "prob_pred": [0.1, 0.5, 0.9],
                        "prob_true": [0.12, 0.45, 0.88], "count": [10, 10, 10], "brier": 0.1652},
        "sweep": [{"threshold": t, "precision": 0.35 + t / 2, "recall": 1 - t, "f1": 0.5, "accuracy": 0.6,
                   "positive_rate": 1 - t} for t in (0.0, 0.25, 0.5, 0.75, 1.0)],
        "baselines": [{"name": "dummy", "kind": "dummy", "reference": "prior",
                       "metrics": {"roc_auc": 0.5, "log_loss": 0.6482, "rows": 4000.0}}],
        "slices": [{"slice": slice_column, "segment": segment, "kind": "category", "support": 1201,
                    "metrics": {"roc_auc": 0.7586, "recall": 0.7876}, "intervals": {"roc_auc": [0.729, 0.787]},
                    "low_support": False},
                   {"slice": slice_column, "segment": "islands", "kind": "category", "support": 20,
                    "metrics": {"roc_auc": 0.9048}, "intervals": {"roc_auc": [0.7141, 1.0]}, "low_support": True}],
        "bootstrap": {"resamples": 1000, "confidence": 0.95, "seed": 0, "min_support": 30},
        "examples": {"id_column": "customer_id", "loss": "log_loss",
                     "highest_loss": [{"row": 1658, "id": "c-01658", "label": "1", "prediction": "0",
                                       "score": 0.0079, "loss": 4.841}],
                     "correct": [{"row": 1627, "id": "c-01627", "label": "0", "prediction": "0", "score": 0.1348,
                                  "loss": 0.1448}]},
        "outcomes": [{"rule": "min.roc_auc", "passed": True, "message": "roc_auc 0.8125 is at least 0.7",
                      "metric": "roc_auc", "value": 0.8125, "bound": 0.7, "segment": ""},
                     {"rule": "slice_gates[0]", "passed": False, "metric": "roc_auc", "value": 0.7586, "bound": 0.8,
                      "segment": f"{slice_column}={segment}",
                      "message": f"{slice_column}={segment}: roc_auc 0.7586 is below the minimum 0.8"}],
        "findings": [{"check": "gate.slice", "severity": "error", "message": "slice gate failed", "evidence": {},
                      "fix": ""},
                     {"check": "slice.support", "severity": "info", "evidence": {}, "fix": "",
                      "message": "slice region=islands has 20 rows, below min_support 30"}],
    })


def plots_by_name(page) -> dict:
    return {p["name"]: p for p in page["plots"]}


def test_binary_evaluation_page(chromium, tmp_path):
    path = write_page(tmp_path / "binary.html", evaluation_html(binary_record(), lineage={"run": "run-42"}))
    page = chromium.open(path)
    assert_offline_and_drawn(page, path, charts=6)
    plots = plots_by_name(page)
    assert set(plots) == {"roc", "pr", "calibration", "sweep", "confusion", "slice-0"}
    assert plots["roc"]["traces"][0] == {"type": "scatter", "name": "ROC (AUC 0.812)", "points": 5}
    assert plots["confusion"]["traces"][0]["type"] == "heatmap"
    assert plots["slice-0"]["traces"][0]["points"] == 2  # south and islands
    lines = page["text"].splitlines()
    assert "roc_auc\t0.8125\t[0.7991, 0.8268]\t0.5\t+0.3125" in lines  # value, interval, baseline, delta
    assert "log_loss\t0.498\t\t0.6482\t-0.1502" in lines
    assert any(line.startswith("FAILED\tslice_gates[0]\troc_auc\tregion=south\t0.7586\t0.8") for line in lines)
    assert any(line.startswith("region\tislands") and "low support" in line for line in lines)
    assert "1658\tc-01658\t1\t0\t0.0079\t4.841" in lines
    lineage = page["text"][page["text"].index("Lineage"):]
    assert "run\nrun-42" in lineage and "snapshot\nsnap-1" in lineage and "model\nmod-1" in lineage
    assert "0.39 (maximize f1 on validation)" in page["text"]
    assert "slice gate failed" not in page["text"]  # gate findings are the gate table's rows
    assert "below min_support 30" in page["text"]


def test_multiclass_evaluation_page(chromium, tmp_path):
    labels = ["setosa", "versicolor", "virginica"]
    data = envelope({
        "id": "eval-iris", "model_id": "mod-iris", "feature_set_id": "", "split": "test", "evaluator": "auto",
        "task": "multiclass", "passed": True, "classes": labels,
        "metrics": {"f1_macro": 0.96, "accuracy": 0.96, "log_loss": 0.1637, "rows": 75.0},
        "per_class": [{"class": c, "precision": p, "recall": r, "f1": f, "support": 25}
                      for c, p, r, f in zip(labels, (1.0, 0.9231, 0.9583), (1.0, 0.96, 0.92), (1.0, 0.9412, 0.9388))],
        "confusion": {"labels": labels, "matrix": [[25, 0, 0], [0, 24, 1], [0, 2, 23]]},
        "calibration": {"strategy": "uniform", "bins": 2, "prob_pred": [0.55, 0.95], "prob_true": [0.5, 1.0],
                        "count": [5, 70], "brier": 0.0366},
    })
    path = write_page(tmp_path / "iris.html", evaluation_html(data, title="Iris <test>"))
    page = chromium.open(path)
    assert_offline_and_drawn(page, path, charts=2)
    assert page["title"] == "Iris <test>"
    confusion = plots_by_name(page)["confusion"]
    assert confusion["traces"] == [{"type": "heatmap", "name": None, "points": 3}]
    lines = page["text"].splitlines()
    assert "versicolor\t0.9231\t0.96\t0.9412\t25" in lines
    assert "Brier score 0.0366." in page["text"]
    assert "ROC" not in page["text"] and "Residuals" not in page["text"]


def test_regression_evaluation_page(chromium, tmp_path):
    data = envelope({
        "id": "eval-diab", "model_id": "mod-d", "feature_set_id": "fs-d", "split": "test",
        "evaluator": "regression", "task": "regression", "passed": True,
        "metrics": {"mae": 44.52, "rmse": 54.21, "r2": 0.4222, "rows": 221.0},
        "intervals": {"mae": [40.51, 48.46]},
        "residuals": {"bias": 10.68, "quantiles": {"0.05": -80.26, "0.5": 13.16, "0.95": 90.83},
                      "abs_quantiles": {"0.05": 3.279, "0.5": 41.22, "0.95": 99.64}},
        "baselines": [{"name": "dummy", "kind": "dummy", "reference": "mean",
                       "metrics": {"mae": 60.88, "r2": 0.0, "rows": 221.0}}],
        "slices": [{"slice": "sex", "segment": "1", "kind": "category", "support": 119,
                    "metrics": {"mae": 41.98}, "intervals": {"mae": [37.13, 47.57]}, "low_support": False}],
        "examples": {"id_column": "row", "loss": "abs_error",
                     "highest_loss": [{"row": 144, "label": "68.0", "prediction": "203.4330637035843",
                                       "loss": 135.43}], "correct": []},
    })
    path = write_page(tmp_path / "diabetes.html", evaluation_html(data))
    page = chromium.open(path)
    assert_offline_and_drawn(page, path, charts=2)
    residuals = plots_by_name(page)["residuals"]
    assert [(t["name"], t["points"]) for t in residuals["traces"]] == [("residual", 3), ("absolute residual", 3)]
    lines = page["text"].splitlines()
    assert "mae\t44.52\t[40.51, 48.46]\t60.88\t-16.36" in lines  # lower is better: a negative delta
    assert "0.5\t13.16\t41.22" in lines and "Bias (mean of prediction - label): 10.68." in page["text"]
    assert "144\t68\t203.4\t135.4" in lines
    assert "Confusion" not in page["text"] and "Curves" not in page["text"]


def test_evaluation_page_of_a_real_evaluation(chromium, tmp_path):
    """A record made by ``tether.evaluate``: every section it fills is drawn."""
    import tether

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"region": rng.choice(["north", "south", "east"], 3000)})
    y = rng.integers(0, 2, 3000)
    score = np.clip(y * 0.35 + rng.random(3000) * 0.65, 0, 1)
    record = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], beats={"dummy": 0.05})
    data = serde.to_dict(record)
    path = write_page(tmp_path / "real.html", evaluation_html(data))
    page = chromium.open(path)
    assert_offline_and_drawn(page, path)
    plots = plots_by_name(page)
    assert {"roc", "pr", "confusion", "slice-0"} <= set(plots)
    assert plots["slice-0"]["traces"][0]["points"] == 3
    assert re.search(rf"roc_auc\t{re.escape(num(record.metrics['roc_auc']))}\t", page["text"])
    assert json.loads(serde.dumps(record))["data"]["task"] == "binary"
