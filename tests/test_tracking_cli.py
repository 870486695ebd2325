"""`tether runs ls` filters, `tether runs diff` and `tether runs show` on tracked runs."""

from __future__ import annotations

import json

import pytest
import tether
from tether.config import load_chain
from tether.runner import run_chain
from tracking_helpers import make_project


@pytest.fixture
def runs(tmp_path, host):
    """Three Python-API runs with tags and metrics, plus one failed run."""
    ws = tmp_path / ".tether"
    ids = {}
    for name, auc, team in (("a", 0.75, "risk"), ("b", 0.85, "risk"), ("c", 0.9, "growth")):
        with tether.start_run(name="sweep", workspace=ws, host=host, tags={"team": team},
                              params={"lr": auc / 10}) as run:
            run.log_metrics({"roc_auc": auc - 0.1}, step=0)
            run.log_metrics({"roc_auc": auc}, step=1)
            if name != "a":
                run.log_metric("log_loss", 1 - auc)
        ids[name] = run.id
    with pytest.raises(ValueError):
        with tether.start_run(name="other", workspace=ws, host=host) as run:
            raise ValueError("bad batch")
    ids["failed"] = run.id
    return ids


def listed(tether_cli, *args):
    result = tether_cli("runs", "ls", "--json", *args)
    assert result.exit_code == 0, result
    return {r["data"]["id"] for r in json.loads(result.stdout)}


def test_runs_ls_filters_by_chain_status_tag_and_metric(runs, tether_cli):
    everything = {runs["a"], runs["b"], runs["c"], runs["failed"]}
    assert listed(tether_cli) == everything
    assert listed(tether_cli, "--chain", "sweep") == everything - {runs["failed"]}
    assert listed(tether_cli, "--status", "failed") == {runs["failed"]}
    assert listed(tether_cli, "--tag", "team=risk") == {runs["a"], runs["b"]}
    assert listed(tether_cli, "--tag", "team=risk", "--tag", "team=growth") == set()
    assert listed(tether_cli, "--where", "roc_auc>0.8") == {runs["b"], runs["c"]}  # the latest step counts
    assert listed(tether_cli, "--where", "roc_auc>=0.85", "--where", "log_loss<0.12") == {runs["c"]}
    assert listed(tether_cli, "--where", "roc_auc!=0.75") == {runs["b"], runs["c"]}
    assert listed(tether_cli, "--where", "roc_auc == 0.75") == {runs["a"]}
    # a run without the metric is left out, whatever the operator
    assert listed(tether_cli, "--where", "log_loss<=1") == {runs["b"], runs["c"]}
    assert listed(tether_cli, "--where", "nosuch>0") == set()


@pytest.mark.parametrize("expr", ["roc_auc>>0.8", "roc_auc", "roc_auc>high", ">0.8", "roc_auc=0.8"])
def test_a_malformed_where_is_one_line_exit_2(runs, tether_cli, expr):
    result = tether_cli("runs", "ls", "--where", expr)
    assert result.exit_code == 2
    assert result.stderr.startswith("tether: error: --where") and len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_tag_is_one_line_exit_2(runs, tether_cli):
    result = tether_cli("runs", "ls", "--tag", "team")
    assert result.exit_code == 2 and result.stderr.startswith("tether: error: --tag 'team': expected KEY=VALUE")


def test_runs_ls_human_output_shows_the_filtered_metric(runs, tether_cli):
    result = tether_cli("runs", "ls", "--where", "roc_auc>0.88")
    assert result.exit_code == 0, result
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["run", "status"] and "roc_auc" in header.split()
    assert len(rows) == 1 and rows[0].startswith(runs["c"]) and "0.9" in rows[0].split()


def test_runs_diff_shows_config_and_metric_differences_side_by_side(runs, tether_cli):
    result = tether_cli("runs", "diff", runs["a"], runs["c"], "--json")
    assert result.exit_code == 0, result
    diff = json.loads(result.stdout)["differences"]
    assert diff["metrics"]["roc_auc"] == {"a": 0.75, "b": 0.9}
    assert diff["metrics"]["log_loss"]["a"] is None
    assert diff["config"]["params.lr"] == {"a": 0.075, "b": 0.09}
    assert diff["environment"] == {} and diff["data"] == {}
    human = tether_cli("runs", "diff", runs["a"], runs["c"])
    assert human.exit_code == 0, human
    lines = human.stdout.splitlines()
    assert lines[0].split()[:4] == ["section", "key", runs["a"], runs["c"]]
    auc = next(line for line in lines if " roc_auc " in line).split()
    assert auc == ["metrics", "roc_auc", "0.75", "0.9", "+0.15"]
    assert "same: data" in human.stdout
    unknown = tether_cli("runs", "diff", runs["a"], "run-nope")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("tether: error: no run 'run-nope'")


def test_runs_diff_and_ls_on_chain_runs_show_data_and_snapshot_filter(tmp_path, host, tether_cli):
    path = make_project(tmp_path)
    first, outputs = run_chain(load_chain(path, host), host)
    path.write_text(path.read_text().replace("rows: 1500", "rows: 1400").replace("C: 0.5", "C: 0.4"))
    second, later = run_chain(load_chain(path, host), host)
    snapshot = outputs["customers"].id
    assert listed(tether_cli, "--snapshot", snapshot) == {first.id}
    assert listed(tether_cli, "--snapshot", later["customers"].id) == {second.id}
    result = tether_cli("runs", "diff", first.id, second.id, "--json")
    diff = json.loads(result.stdout)["differences"]
    assert diff["data"]["customers.id"] == {"a": snapshot, "b": later["customers"].id}
    assert diff["config"]["params.train.C"] == {"a": 0.5, "b": 0.4}
    assert "roc_auc" in diff["metrics"] and diff["code"] == {}
    shown = tether_cli("runs", "show", second.id)
    assert shown.exit_code == 0, shown
    for text in ("customers.fingerprint", "packages.scikit-learn", "train.C", "train.random_state", "loss", "0..3"):
        assert text in shown.stdout


def test_runs_recorded_by_the_previous_release_show_and_diff(tmp_path, tether_cli):
    import shutil
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "release-0.1.0" / "tether.db"
    (tmp_path / ".tether").mkdir()
    shutil.copy(fixture, tmp_path / ".tether" / "tether.db")
    first, second = "run-1dc55b5b12a645cc", "run-6f185469cf534065"
    shown = tether_cli("runs", "show", first)
    assert shown.exit_code == 0, shown
    diff = tether_cli("runs", "diff", first, second, "--json")
    assert diff.exit_code == 0, diff
    differences = json.loads(diff.stdout)["differences"]
    assert differences["data"] == {} and differences["code"] == {}  # same data, same (untracked) code
    assert differences["metrics"]  # rebuilt from the evaluations: C=0.5 changed them
    assert all(v["a"] is not None and v["b"] is not None for v in differences["metrics"].values())
    assert listed(tether_cli, "--where", "rows>0") == set()  # old runs hold no metrics of their own
