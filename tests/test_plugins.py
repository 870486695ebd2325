"""The plugin host: load order, backends registry, entry points, and one test per hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import types
from typing import ClassVar

import attrs
import pytest
import tether
from tether import hookimpl, hookspecs
from tether.backends import Backends, Source, SplitStrategy
from tether.config import build_chain
from tether.errors import ConfigError, PluginError
from tether.manager import ESSENTIAL_PLUGINS, PluginHost
from tether.runner import run_chain

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
REPO_EXAMPLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "tether-weekly-split"


def small_csv(tmp_path, rows=80):
    lines = ["customer_id,event_ts,amount,label"]
    lines += [f"c{i},2025-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z,{i * 1.5},{i % 2}" for i in range(rows)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")


def chain_for(tmp_path, host, extra_stages=(), plugins=()):
    small_csv(tmp_path)
    return build_chain({"version": 1, "name": "t", "plugins": list(plugins), "stages": [
        {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
        {"stage": "split", "plugin": "random", "params": {"seed": 1}},
        *extra_stages,
    ]}, host, base_dir=tmp_path)


# --- host and registry ---------------------------------------------------------------------


def test_builtins_are_registered_and_answer_every_stage(host):
    names = {name for name, _ in host.pm.list_name_plugin()}
    assert set(ESSENTIAL_PLUGINS) <= names
    answered = {h.name for module in ESSENTIAL_PLUGINS for h in host.pm.get_hookcallers(host.pm.get_plugin(module))}
    for stage in ("snapshot", "split", "featurize", "evaluate", "register", "deploy", "monitor"):
        assert f"tether_{stage}" in answered


def test_duplicate_backend_name_is_an_error():
    backends = Backends()

    @attrs.frozen
    class A(SplitStrategy):
        name: ClassVar[str] = "same"

    @attrs.frozen
    class B(SplitStrategy):
        name: ClassVar[str] = "same"

    backends.add(A)
    with pytest.raises(PluginError, match="split backend name 'same' .* is already used by"):
        backends.add(B)


def test_backend_must_be_a_class_with_a_known_kind():
    backends = Backends()

    @attrs.frozen
    class Odd:
        kind: ClassVar[str] = "teleporter"
        name: ClassVar[str] = "x"

    with pytest.raises(PluginError, match="has kind 'teleporter'; use one of"):
        backends.add(Odd)
    with pytest.raises(PluginError, match="takes a class"):
        backends.add(Odd())


def test_registering_a_class_instead_of_an_instance_is_caught(host):
    class Hooks:
        @hookimpl
        def tether_configure(self, host):
            pass

    with pytest.raises(PluginError, match="forgotten the \\(\\)"):
        host.register(Hooks)


def test_unknown_hook_implementation_is_rejected(host):
    plugin = types.ModuleType("typo_plugin")

    @hookimpl
    def tether_snapshott(stage):
        return None

    plugin.tether_snapshott = tether_snapshott
    with pytest.raises(PluginError, match="typo_plugin"):
        host.register(plugin, name="typo_plugin")
    assert not host.pm.has_plugin("typo_plugin")


def test_hook_with_an_argument_the_spec_lacks_is_rejected(host):
    class Bad:
        @hookimpl
        def tether_split(self, snapshot, colour):
            return None

    with pytest.raises(PluginError, match="colour"):
        host.register(Bad(), name="bad")


def test_backend_missing_its_extra_is_listed_unavailable_with_the_install_command(host):
    @attrs.frozen(kw_only=True)
    class VectorSource(Source):
        name: ClassVar[str] = "vectors"
        requires: ClassVar[tuple[str, ...]] = ("surely_not_installed_module_xyz",)
        extra: ClassVar[str] = "rag"

    module = types.ModuleType("tether_vectors_plugin")
    module.tether_add_backends = hookimpl(lambda backends: backends.add(VectorSource))
    VectorSource.__module__ = module.__name__
    host.register(module, name="tether_vectors_plugin")
    row = next(r for r in host.describe() if r["name"] == "tether_vectors_plugin")
    assert row["available"] is False
    # installed from this clone (editable), so the hint installs the extra from the clone
    assert row["install"] == f"pip install -e '{REPO}[rag]'"
    with pytest.raises(PluginError, match=rf"needs surely_not_installed_module_xyz: pip install -e '{REPO}\[rag\]'"):
        host.backends.get("source", "vectors")


def test_disabled_plugins_are_blocked(monkeypatch):
    monkeypatch.setenv("TETHER_DISABLE_PLUGINS", "tether.contrib.postgres")
    host = PluginHost(entry_points=False)
    assert not host.pm.has_plugin("tether.contrib.postgres")
    with pytest.raises(PluginError, match="unknown store plugin 'postgres'"):
        host.backends.get("store", "postgres")


def test_chain_plugin_by_dotted_path_adds_backends(tmp_path, host):
    (tmp_path / "my_split_plugin.py").write_text(textwrap.dedent("""
        from typing import ClassVar
        import attrs
        from tether import hookimpl
        from tether.backends import SplitStrategy

        @attrs.frozen(kw_only=True)
        class Halves(SplitStrategy):
            name: ClassVar[str] = "halves"
            def assign(self, frame, *, context):
                import numpy as np, pandas as pd
                return pd.Series(np.where(np.arange(len(frame)) < len(frame) // 2, "train", "test"), index=frame.index)

        @hookimpl
        def tether_add_backends(backends):
            backends.add(Halves)
    """))
    small_csv(tmp_path)
    chain = build_chain({"version": 1, "plugins": ["my_split_plugin"], "stages": [
        {"stage": "snapshot", "plugin": "csv", "params": {"path": "data.csv"}},
        {"stage": "split", "plugin": "halves"},
    ]}, host, base_dir=tmp_path)
    run, outputs = run_chain(chain, host)
    assert outputs["split"].sizes["train"] == 40 and outputs["split"].sizes["test"] == 40


def test_chain_plugin_that_fails_to_import_is_named(tmp_path, host):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('kaboom')\n")
    with pytest.raises(ConfigError,
                       match=r"plugins\[0\]: plugin 'broken_plugin' failed to import: RuntimeError: kaboom"):
        build_chain({"version": 1, "plugins": ["broken_plugin"], "stages": [{"stage": "snapshot", "plugin": "csv",
                                                                          "params": {"path": "x.csv"}}]},
                    host, base_dir=tmp_path)


# --- one test per hook ---------------------------------------------------------------------


class Recorder:
    """Implements every hook as a wrapper or observer and records the calls."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def tether_configure(self, host):
        self.calls.append(("tether_configure", host))

    @hookimpl
    def tether_run_started(self, run, context):
        self.calls.append(("tether_run_started", run.status))

    @hookimpl
    def tether_run_finished(self, run, context):
        self.calls.append(("tether_run_finished", run.status))

    def _wrap(name):
        @hookimpl(wrapper=True)
        def wrapper(self, stage, context):
            result = yield
            self.calls.append((name, result.kind))
            return result

        wrapper.__name__ = name
        return wrapper

    tether_snapshot = _wrap("tether_snapshot")
    tether_split = _wrap("tether_split")


@pytest.fixture
def recorder(host):
    rec = Recorder()
    host.register(rec, name="recorder")
    return rec


def test_hook_tether_configure_is_historic(host, recorder):
    assert ("tether_configure", host) in recorder.calls


def test_hook_tether_add_backends_reaches_late_plugins(host):
    @attrs.frozen(kw_only=True)
    class Late(SplitStrategy):
        name: ClassVar[str] = "late"

    class Plugin:
        @hookimpl
        def tether_add_backends(self, backends):
            backends.add(Late)

    host.register(Plugin(), name="late")
    assert host.backends.get("split", "late") is Late


def test_hook_tether_add_commands(tether_cli, tmp_path):
    (tmp_path / "hello_cmd.py").write_text(textwrap.dedent("""
        import click
        from tether import hookimpl

        @hookimpl
        def tether_add_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")
    """))
    dist = tmp_path / "site" / "hello_cmd-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tether]\nhello = hello_cmd\n")
    env = {"PYTHONPATH": f"{tmp_path}:{tmp_path / 'site'}"}
    result = tether_cli("hello", env=env)
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "hello from a plugin"
    assert "hello" in tether_cli("--help", env=env).stdout


def test_hook_tether_run_started(tmp_path, host, recorder):
    run_chain(chain_for(tmp_path, host), host)
    started = [c for c in recorder.calls if c[0] == "tether_run_started"]
    assert started == [("tether_run_started", "running")]
    assert recorder.calls.index(started[0]) < recorder.calls.index(("tether_snapshot", "snapshot"))


def test_hook_tether_run_finished(tmp_path, host, recorder):
    run_chain(chain_for(tmp_path, host), host)
    assert recorder.calls[-1] == ("tether_run_finished", "succeeded")


def test_hook_tether_run_finished_sees_failures(tmp_path, host, recorder):
    class Explode:
        @hookimpl(tryfirst=True)
        def tether_split(self):
            raise ValueError("nope")

    host.register(Explode(), name="explode")
    with pytest.raises(tether.StageError):
        run_chain(chain_for(tmp_path, host), host)
    assert recorder.calls[-1] == ("tether_run_finished", "failed")


def test_hook_tether_snapshot(tmp_path, host, recorder):
    run_chain(chain_for(tmp_path, host), host)
    assert ("tether_snapshot", "snapshot") in recorder.calls


def test_hook_tether_split(tmp_path, host, recorder):
    run_chain(chain_for(tmp_path, host), host)
    assert ("tether_split", "split") in recorder.calls


def test_a_plugin_can_take_over_a_stage(tmp_path, host):
    class Override:
        @hookimpl(tryfirst=True)
        def tether_split(self, snapshot, stage, context):
            from tether.plugins.splits import tether_split as builtin

            manifest = builtin(snapshot=snapshot, stage=stage, context=context)
            return attrs.evolve(manifest, summary={"overridden": True})

    host.register(Override(), name="override")
    _, outputs = run_chain(chain_for(tmp_path, host), host)
    assert outputs["split"].summary == {"overridden": True}


def test_wrapper_sees_stage_exceptions(tmp_path, host):
    seen = []

    class Watch:
        @hookimpl(wrapper=True)
        def tether_split(self, stage):
            try:
                return (yield)
            except Exception as exc:
                seen.append(type(exc).__name__)
                raise

    class Explode:
        @hookimpl(tryfirst=True)
        def tether_split(self):
            raise ValueError("split exploded")

    host.register(Watch(), name="watch")
    host.register(Explode(), name="explode")
    with pytest.raises(tether.StageError, match="split exploded"):
        run_chain(chain_for(tmp_path, host), host)
    assert seen == ["ValueError"]


# Stage hooks beyond split are exercised end to end by the example chain; these tests check
# each is called with its documented arguments.
STAGE_HOOKS = ["tether_featurize", "tether_evaluate", "tether_register", "tether_deploy", "tether_monitor"]


@pytest.mark.parametrize("hook_name", STAGE_HOOKS)
def test_hook_stage_receives_its_documented_arguments(hook_name, churn_run):
    import inspect

    outputs, calls = churn_run
    spec_args = set(inspect.signature(getattr(hookspecs, hook_name)).parameters)
    assert set(calls[hook_name]) == spec_args
    assert calls[hook_name]["stage"].stage == hook_name.removeprefix("tether_")


class Spy:
    """Records the keyword arguments every stage hook is called with, then lets the built-ins answer."""

    def __init__(self):
        self.calls = {}

    @hookimpl(tryfirst=True)
    def tether_featurize(self, snapshot, split, stage, context):
        self.calls["tether_featurize"] = dict(snapshot=snapshot, split=split, stage=stage, context=context)

    @hookimpl(tryfirst=True)
    def tether_evaluate(self, model, features, stage, context):
        self.calls["tether_evaluate"] = dict(model=model, features=features, stage=stage, context=context)

    @hookimpl(tryfirst=True)
    def tether_register(self, model, evaluation, stage, context):
        self.calls["tether_register"] = dict(model=model, evaluation=evaluation, stage=stage, context=context)

    @hookimpl(tryfirst=True)
    def tether_deploy(self, model_version, snapshot, stage, context):
        self.calls["tether_deploy"] = dict(model_version=model_version, snapshot=snapshot, stage=stage,
                                           context=context)

    @hookimpl(tryfirst=True)
    def tether_monitor(self, reference, current, deployment, stage, context):
        self.calls["tether_monitor"] = dict(reference=reference, current=current, deployment=deployment,
                                            stage=stage, context=context)


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    """One run of the churn example with a plugin recording every stage hook's arguments."""
    import shutil

    from tether.config import load_chain

    root = tmp_path_factory.mktemp("churn")
    shutil.copytree(REPO_EXAMPLE.parent / "churn", root / "churn", ignore=shutil.ignore_patterns(".tether"))
    host = PluginHost(entry_points=False)
    spy = Spy()
    host.register(spy, name="spy")
    chain = load_chain(root / "churn" / "chain.yaml", host)
    _, outputs = run_chain(chain, host)
    return outputs, spy.calls


def test_stage_hooks_receive_the_records_the_chain_wires(churn_run):
    outputs, calls = churn_run
    assert calls["tether_featurize"]["split"] is outputs["split"]
    assert calls["tether_featurize"]["snapshot"] is outputs["customers"]
    assert calls["tether_evaluate"]["model"] is outputs["train"]
    assert calls["tether_register"]["evaluation"] is outputs["evaluate"]
    assert calls["tether_deploy"]["snapshot"] is outputs["scoring"]  # inputs: {snapshot: scoring}
    assert calls["tether_monitor"]["reference"] is outputs["customers"]
    assert calls["tether_monitor"]["current"] is outputs["scoring"]
    assert calls["tether_monitor"]["deployment"] is outputs["deploy"]


# --- entry-point plugins -------------------------------------------------------------------


@pytest.fixture(scope="module")
def weekly_site(tmp_path_factory):
    """The documented example plugin, pip-installed into its own folder."""
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "tether-weekly-split"
    shutil.copytree(REPO_EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # the guide's own test beside the module, as a plugin author keeps it: must not break the build
    (source / "test_tether_weekly_split.py").write_text("def test_nothing_here():\n    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (site / "test_tether_weekly_split.py").exists()
    return site


def test_installed_plugin_is_found_through_its_entry_point(weekly_site, tether_cli):
    result = tether_cli("plugins", "--json", env={"PYTHONPATH": str(weekly_site)})
    assert result.exit_code == 0, result
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["weekly"]["origin"] == "entry point"
    assert rows["weekly"]["distribution"] == "tether-weekly-split"
    assert rows["weekly"]["backends"] == ["split:weekly"]
    assert rows["weekly"]["available"] is True


def test_installed_plugin_is_used_by_a_chain(weekly_site, tether_cli, tmp_path):
    small_csv(tmp_path)
    (tmp_path / "chain.yaml").write_text(textwrap.dedent("""\
        version: 1
        stages:
          - {stage: snapshot, plugin: csv, params: {path: data.csv}}
          - {stage: split, plugin: weekly, params: {time_column: event_ts, test_weeks: 8}}
    """))
    result = tether_cli("run", "chain.yaml", "--json", env={"PYTHONPATH": str(weekly_site)})
    assert result.exit_code == 0, result
    split = json.loads(result.stdout)["outputs"]["split"]["data"]
    assert split["strategy"] == "weekly"
    assert split["sizes"]["test"] > 0 and split["sizes"]["train"] > split["sizes"]["test"]


def test_entry_points_load_only_when_needed(tmp_path, tether_cli):
    marker = tmp_path / "imported.txt"
    (tmp_path / "lazy_plugin.py").write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    dist = tmp_path / "lazy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lazy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tether]\nlazy = lazy_plugin\n")
    env = {"PYTHONPATH": str(tmp_path)}
    assert tether_cli("runs", "ls", env=env).exit_code == 0
    assert not marker.exists()  # a built-in command never imports third-party plugins
    assert tether_cli("plugins", env=env).exit_code == 0
    assert marker.read_text() == "x"


def test_failing_entry_point_plugin_is_named(tmp_path, tether_cli):
    (tmp_path / "bad_ep.py").write_text("import this_module_does_not_exist_anywhere\n")
    dist = tmp_path / "bad_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tether]\nbadplugin = bad_ep\n")
    result = tether_cli("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.exit_code == 2
    assert result.stderr.startswith("tether: error: plugin 'badplugin' (bad_ep) failed to load: ModuleNotFoundError")


def test_plugins_json_lists_builtins_and_contrib_with_extras(tether_cli):
    result = tether_cli("plugins", "--json")
    assert result.exit_code == 0, result
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tether.plugins.splits"]["origin"] == "builtin"
    assert "split:random" in rows["tether.plugins.splits"]["backends"]
    postgres = rows["tether.contrib.postgres"]
    assert postgres["origin"] == "default" and "store:postgres" in postgres["backends"]
    assert set(postgres) >= {"name", "version", "hooks", "available", "install", "missing"}


def test_essential_plugins_cannot_be_disabled(monkeypatch):
    monkeypatch.setenv("TETHER_DISABLE_PLUGINS", "tether.plugins.snapshots")
    with pytest.raises(PluginError, match="essential plugin 'tether.plugins.snapshots', which cannot be disabled"):
        PluginHost(entry_points=False)
