"""The docs stay true: the hook reference is generated, the plugin guide is the tested plugin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from tether import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def load_generator(name: str = "hooks"):
    spec = importlib.util.spec_from_file_location(f"gen_{name}", ROOT / "docs" / f"gen_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["hooks", "cli", "plugins"])
def test_reference_pages_are_generated_from_the_code(name):
    actual = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
    assert actual == load_generator(name).render(), f"docs/{name}.md is stale: run `python docs/gen_{name}.py`"


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


def test_every_package_folder_is_listed_for_installation():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in (("core", "tether"), ("plugins", "tether.plugins"), ("contrib", "tether.contrib")):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found == listed
