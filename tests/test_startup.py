"""Start-up: commands that only list or read records import no data library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"
HEAVY = {"pandas", "pyarrow", "numpy", "scipy", "sklearn", "duckdb"}

CHAIN = """\
version: 1
name: mini
stages:
  - stage: snapshot
    plugin: python
    params: {function: "churn.data:customers", dataset: customers, kwargs: {rows: 200}}
"""


def imported_modules(args: list[str], cwd: Path) -> set[str]:
    """Top-level names of every module ``tether ARGS`` imported (``python -X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "from tether.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "tether" in names  # the listing is real
    return names


def test_help_imports_no_data_library(tmp_path):
    names = imported_modules(["--help"], tmp_path)
    assert not names & HEAVY, f"tether --help imported {sorted(names & HEAVY)}"


@pytest.mark.slow
def test_runs_ls_of_a_workspace_with_runs_imports_no_data_library(tmp_path, tether_cli):
    shutil.copytree(EXAMPLE / "churn", tmp_path / "churn")
    (tmp_path / "chain.yaml").write_text(CHAIN)
    result = tether_cli("run", "chain.yaml")
    assert result.exit_code == 0, result
    listed = tether_cli("runs", "ls")
    assert "succeeded" in listed.stdout and "mini" in listed.stdout
    names = imported_modules(["runs", "ls"], tmp_path)
    assert not names & HEAVY, f"tether runs ls imported {sorted(names & HEAVY)}"


def test_shell_completion_completes_plugin_commands(tmp_path, tether_cli):
    result = tether_cli(env={"_TETHER_COMPLETE": "bash_complete", "COMP_WORDS": "tether sna", "COMP_CWORD": "1"})
    assert result.exit_code == 0, result
    assert result.stdout.split() == ["plain,snapshots"]
