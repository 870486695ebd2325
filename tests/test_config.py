"""Chain configs: every kind of bad input is one line, exit 2, and nothing in the store."""

from __future__ import annotations

import re
import sqlite3
import textwrap

import pytest
from tether.config import build_chain, load_chain
from tether.errors import ConfigError

CSV = "customer_id,event_ts,amount,label\n" + "".join(
    f"c{i},2025-01-{1 + i % 28:02d}T00:00:00Z,{i * 1.5},{i % 2}\n" for i in range(60)
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data.csv").write_text(CSV)
    return tmp_path


def write_chain(project, body: str, name: str = "chain.yaml"):
    path = project / name
    path.write_text(textwrap.dedent(body))
    return path


def records_in_store(project) -> int:
    db = project / ".tether" / "tether.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]


GOOD = """\
version: 1
stages:
  - {stage: snapshot, plugin: csv, params: {path: data.csv}}
  - {stage: split, plugin: random, params: {seed: 3}}
"""

BAD_CHAINS = {
    "unknown plugin": (
        GOOD.replace("plugin: csv", "plugin: cvs"),
        ["stages[0].plugin", "unknown source plugin 'cvs'", "did you mean 'csv'"],
    ),
    "misspelled parameter": (
        GOOD.replace("seed: 3", "seeed: 3"),
        ["stages[1].params", "unknown parameter 'seeed'", "allowed parameters:", "seed"],
    ),
    "wrong type": (
        GOOD.replace("seed: 3", "seed: three"),
        ["stages[1].params", "seed", "expected int", "'three'"],
    ),
    "input from a stage that does not exist": (
        GOOD.replace("params: {seed: 3}", "params: {seed: 3}, inputs: {snapshot: raw}"),
        ["stages[1].inputs.snapshot", "no earlier stage has id 'raw'"],
    ),
    "input no earlier stage produces": (
        "version: 1\nstages:\n  - {stage: split, plugin: random}\n",
        ["stages[0]", "needs a snapshot"],
    ),
    "invalid YAML": (
        "version: 1\nstages:\n  - {stage: snapshot, plugin: csv\n  - oops: [\n",
        ["invalid YAML", "line"],
    ),
    "unknown top-level key": (
        GOOD.replace("stages:", "stagse:"),
        ["unknown key 'stagse'", "did you mean 'stages'"],
    ),
    "unknown stage": (
        GOOD.replace("stage: split", "stage: splitt"),
        ["stages[1].stage", "unknown stage 'splitt'", "did you mean 'split'"],
    ),
    "wrong version": (GOOD.replace("version: 1", "version: 7"), ["version: expected 1"]),
    "step that is not module:function": (
        GOOD + "  - {step: not_a_function}\n",
        ["stages[2].step", "module:function"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CHAINS))
def test_bad_chain_is_one_line_exit_2_and_writes_nothing(project, tether_cli, case):
    body, expected = BAD_CHAINS[case]
    write_chain(project, body)
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tether: error: "), result
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stderr
    assert records_in_store(project) == 0


def test_missing_chain_file(project, tether_cli):
    result = tether_cli("run", "nope.yaml", cwd=project)
    assert result.exit_code == 2
    assert result.stderr.strip() == "tether: error: chain file 'nope.yaml' not found"


def test_missing_data_file_fails_before_the_run_is_recorded(project, tether_cli):
    write_chain(project, GOOD.replace("data.csv", "missing.csv"))
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == 2, result
    assert "missing.csv" in result.stderr and "not found" in result.stderr
    assert records_in_store(project) == 0


def test_debug_shows_the_traceback(project, tether_cli):
    write_chain(project, GOOD.replace("plugin: csv", "plugin: cvs"))
    result = tether_cli("--debug", "run", "chain.yaml", cwd=project)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "PluginError" in result.stderr


def test_env_interpolation_fills_strings(project, host, monkeypatch):
    monkeypatch.setenv("DATASET_NAME", "customers-eu")
    text = GOOD.replace("params: {path: data.csv}", "params: {path: data.csv, dataset: '${DATASET_NAME}'}")
    path = write_chain(project, text)
    chain = load_chain(path, host)
    assert chain.stages[0].params["dataset"] == "customers-eu"
    assert "${DATASET_NAME}" in chain.text and "customers-eu" not in chain.text


def test_secret_in_a_rejected_value_is_masked_on_the_cli(project, tether_cli):
    write_chain(project, GOOD.replace("seed: 3", "seed: '${SEED_TOKEN}'"))
    result = tether_cli("run", "chain.yaml", cwd=project, env={"SEED_TOKEN": "s3cr3t-value-123"})
    assert result.exit_code == 2
    assert "s3cr3t-value-123" not in result.stderr
    assert "***" in result.stderr


def test_missing_env_var_names_the_key(project, host):
    path = write_chain(project, GOOD.replace("data.csv", "'${NOT_SET_ANYWHERE_X}'"))
    with pytest.raises(ConfigError,
                       match=r"chain.yaml: stages\[0\].params.path: environment variable NOT_SET_ANYWHERE_X"):
        load_chain(path, host)


def test_env_default_is_used(project, host):
    path = write_chain(project, GOOD.replace("data.csv", "'${NOT_SET_ANYWHERE_X:-data.csv}'"))
    chain = load_chain(path, host)
    assert chain.stages[0].params["path"] == "data.csv"
    assert "${NOT_SET_ANYWHERE_X:-data.csv}" in chain.text  # the run records the text as written


def test_toml_chain_is_accepted(project, host):
    path = project / "chain.toml"
    path.write_text(textwrap.dedent("""\
        version = 1
        name = "tomlchain"
        [[stages]]
        stage = "snapshot"
        plugin = "csv"
        params = { path = "data.csv" }
        [[stages]]
        stage = "split"
        plugin = "random"
        params = { seed = 5 }
    """))
    chain = load_chain(path, host)
    assert chain.name == "tomlchain"
    assert [s.stage for s in chain.stages] == ["snapshot", "split"]
    assert chain.stages[1].params == {"seed": 5}


def test_invalid_toml(project, host):
    path = project / "chain.toml"
    path.write_text("version = = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_chain(path, host)


def test_duplicate_explicit_ids_are_rejected(project, host):
    with pytest.raises(ConfigError, match=r"stages\[1\].id: 'a' is used by an earlier stage"):
        build_chain({"version": 1, "stages": [
            {"stage": "snapshot", "id": "a", "plugin": "csv", "params": {"path": "data.csv"}},
            {"stage": "snapshot", "id": "a", "plugin": "csv", "params": {"path": "data.csv"}},
        ]}, host, base_dir=project)


def test_repeated_stages_get_numbered_ids(project, host):
    chain = build_chain({"version": 1, "stages": [
        {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
        {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
    ]}, host, base_dir=project)
    assert chain.stage_ids() == ["snapshot", "snapshot-2"]


def test_input_of_the_wrong_kind(project, host):
    with pytest.raises(ConfigError,
                       match=r"inputs.snapshot: stage 'split' produces a split, but 'snapshot' needs a snapshot"):
        build_chain({"version": 1, "stages": [
            {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
            {"stage": "split", "plugin": "random"},
            {"stage": "split", "id": "again", "plugin": "random", "inputs": {"snapshot": "split"}},
        ]}, host, base_dir=project)


def test_step_asking_for_an_unknown_argument(project, host):
    (project / "mysteps.py").write_text("def fit(features, colour):\n    return None\n")
    with pytest.raises(ConfigError, match="takes 'colour', which tether cannot provide"):
        build_chain({"version": 1, "stages": [
            {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
            {"step": "mysteps:fit"},
        ]}, host, base_dir=project)


def test_boolean_is_not_an_int(host, project):
    with pytest.raises(ConfigError, match="expected int, got a boolean"):
        build_chain({"version": 1, "stages": [
            {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
            {"stage": "split", "plugin": "random", "params": {"seed": True}},
        ]}, host, base_dir=project)


def test_yaml_alias_bomb_is_refused_quickly(project, tether_cli):
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (project / "bomb.yaml").write_text("version: 1\n" + "\n".join(levels) + "\nstages: []\n")
    result = tether_cli("run", "bomb.yaml", timeout=60)
    assert result.exit_code == 2, result
    assert "expands to more than 100,000 values" in result.stderr
    assert records_in_store(project) == 0


def test_duplicate_yaml_keys_are_an_error_naming_the_line(project, host):
    path = write_chain(project, """\
        version: 1
        stages:
          - stage: snapshot
            plugin: csv
            params: {path: data.csv, dataset: d}
            params: {path: other.csv, dataset: d}
        """)
    with pytest.raises(ConfigError, match=r"duplicate key 'params' \(first at line 5\)"):
        load_chain(path, host)


def test_yaml_merge_keys_still_work(project, host):
    path = write_chain(project, """\
        version: 1
        stages:
          - &snap {stage: snapshot, plugin: csv, params: {path: data.csv, dataset: d}}
          - {<<: *snap, id: again}
        """)
    chain = load_chain(path, host)
    assert [s.id for s in chain.stages] == ["snapshot", "again"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200])
def test_a_chain_name_that_could_escape_a_folder_is_refused(project, host, name):
    path = write_chain(project, f"""\
        version: 1
        name: "{name}"
        stages:
          - {{stage: snapshot, plugin: csv, params: {{path: data.csv, dataset: d}}}}
        """)
    with pytest.raises(ConfigError, match="name: the chain name"):
        load_chain(path, host)


def test_an_empty_model_name_is_refused_before_the_run(project, host):
    path = write_chain(project, """\
        version: 1
        stages:
          - {stage: snapshot, plugin: csv, params: {path: data.csv, dataset: d}}
          - {stage: register, params: {model_name: ""}}
        """)
    with pytest.raises(ConfigError, match=r"stages\[1\]\.params.*model_name.*non-empty"):
        load_chain(path, host)


def test_literal_secrets_are_masked_in_the_run_record_and_the_workspace(project, tether_cli, host):
    body = GOOD + ('  - {step: "nosuchmodule_for_secrets:fit", params: {api_token: "literal-token-4242",'
                   ' url: "postgresql://app:pw-literal-99@db/x"}}\n')
    write_chain(project, body)
    chain_text = (project / "chain.yaml").read_text()
    assert "literal-token-4242" in chain_text
    result = tether_cli("run", "chain.yaml", "--debug", cwd=project)
    assert result.exit_code == 2  # the step's module does not exist
    assert "literal-token-4242" not in result.stderr + result.stdout
    from tether.secrets import literal_secrets, mask_literals

    raw = {"store": {"plugin": "postgres", "params": {"dsn": "postgresql://u:pw-9876@h/db"}},
           "storage": {"plugin": "s3", "params": {"secret": "${S3_SECRET}", "key": "abc"}}}
    secrets = literal_secrets(raw)
    assert secrets == ["pw-9876"]
    assert mask_literals(raw, secrets)["store"]["params"]["dsn"] == "postgresql://u:***@h/db"


def test_literal_secret_never_reaches_a_stored_run(project, tether_cli):
    (project / "secret_steps.py").write_text("def fit(snapshot, params):\n    return {'rows': snapshot.num_rows}\n")
    body = GOOD + '  - {step: "secret_steps:fit", params: {api_token: "literal-token-4242"}}\n'
    write_chain(project, body)
    result = tether_cli("run", "chain.yaml", "--json", cwd=project)
    assert result.exit_code == 0, result
    assert "literal-token-4242" not in result.stdout + result.stderr
    assert "prefer ${VAR}" in result.stderr
    with sqlite3.connect(project / ".tether" / "tether.db") as conn:
        bodies = " ".join(row[0] for row in conn.execute("SELECT body FROM records"))
    assert "literal-token-4242" not in bodies and "api_token: \\\"***" in bodies


@pytest.mark.parametrize(("policy", "message"), [
    ("leakge: {exact_duplicates: fail}", r"policy: unknown policy section 'leakge'; did you mean 'leakage'\?"),
    ("leakage: {exact_duplicate: fail}", r"policy.leakage: unknown leakage check 'exact_duplicate'"),
    ("skew_gat: {source: x}", r"policy: unknown policy section 'skew_gat'; did you mean 'skew_gate'\?"),
])
def test_a_misspelled_policy_is_an_error_before_the_run(project, tether_cli, policy, message):
    write_chain(project, GOOD + "policy:\n  " + policy + "\n")
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == 2, result
    assert re.search(message, result.stderr), result.stderr
    assert records_in_store(project) == 0


def test_a_workspace_that_is_a_file_is_one_line_and_writes_nothing(project, tether_cli):
    (project / "ws").write_text("not a folder")
    write_chain(project, GOOD.replace("version: 1\n", "version: 1\nworkspace: ws\n"))
    result = tether_cli("run", "chain.yaml", cwd=project)
    assert result.exit_code == 2, result
    assert result.stderr.strip().endswith("workspace: '" + str(project / "ws") + "' is a file; name a folder")
    assert (project / "ws").read_text() == "not a folder"
    listed = tether_cli("runs", "ls", "-w", "ws", cwd=project)
    assert listed.exit_code == 2 and "is a file, not a folder" in listed.stderr
