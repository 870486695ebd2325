"""The docs stay true: the hook reference is generated, the plugin guide is the tested plugin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tether import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_hooks", ROOT / "docs" / "gen_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_reference_is_generated_from_the_specs():
    expected = load_generator().render()
    actual = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/hooks.md is stale: run `python docs/gen_hooks.py`"


def test_every_hook_is_documented_with_its_signature_and_an_example():
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    gen = load_generator()
    for name in hookspecs.hook_names():
        assert f"### `{gen.signature(name)}`" in text
        assert "Example" in (getattr(hookspecs, name).__doc__ or ""), name


def test_every_hook_has_a_test():
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    for name in hookspecs.hook_names():
        stage_test = name in ("tether_featurize", "tether_evaluate", "tether_register", "tether_deploy",
                              "tether_monitor") and "test_hook_stage_receives_its_documented_arguments" in tests
        assert f"def test_hook_{name}" in tests or stage_test, f"no test_hook_{name}"


def test_plugin_guide_shows_the_tested_plugin_verbatim():
    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    example = ROOT / "examples" / "tether-weekly-split"
    assert (example / "tether_weekly_split.py").read_text(encoding="utf-8") in guide
    assert (example / "pyproject.toml").read_text(encoding="utf-8") in guide


def test_docs_link_to_files_that_exist():
    import re

    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_cli_reference_is_generated_from_the_commands():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == module.render(), "docs/cli.md is stale: run `python docs/gen_cli.py`"


def test_plugin_reference_is_generated_from_the_backends():
    spec = importlib.util.spec_from_file_location("gen_plugins", ROOT / "docs" / "gen_plugins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actual = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert actual == module.render(), "docs/plugins.md is stale: run `python docs/gen_plugins.py`"
