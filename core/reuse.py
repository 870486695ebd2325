"""Reusing a stage's earlier output when nothing it depends on changed (as ``dvc repro``).

Each stage run is keyed by three digests:

* ``config``: the stage as configured (stage, plugin or step, params, inputs) and the
  chain's ``policy``;
* ``inputs``: the ids of the records it consumes (content-addressed where it matters:
  snapshots, models and feature sets), so a changed upstream output reruns it;
* ``code``: the tether version, the source of the module holding the backend class or
  the step function, and the content of every file its params name (outside the
  workspace, where stages write their reports and predictions).

A stage whose three digests match a successful stage of an earlier run of the chain is
*reused*: its recorded output is taken as it is. Snapshot stages always read their
source (the data may have changed; unchanged data gives the same snapshot id, so what
follows is reused), and deploy and monitor stages always run, since they act on the world.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import attrs

#: Stages whose output is a pure function of their config, inputs and code.
REUSABLE = ("split", "featurize", "step", "evaluate", "register")


@attrs.frozen(kw_only=True)
class StageKey:
    config: str
    inputs: str
    code: str

    @property
    def digest(self) -> str:
        return _digest([self.config, self.inputs, self.code])

    def as_dict(self) -> dict[str, str]:
        return {"config": self.config, "inputs": self.inputs, "code": self.code}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _source_digest(module_name: str) -> str:
    """The digest of the source file of ``module_name`` (its name if it has none)."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    try:
        data = Path(path).read_bytes() if path else module_name.encode()
    except OSError:
        data = module_name.encode()
    return hashlib.sha256(data).hexdigest()


def _file_digests(params: Any, base_dir: Path, workspace: Path) -> dict[str, str]:
    """The content digest of every existing file a param value names (relative paths are
    read from the chain's folder), except files inside the workspace, which are what
    stages write (reports, predictions), not what they read."""
    found: dict[str, str] = {}
    values = [params]
    while values:
        value = values.pop()
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, (list, tuple)):
            values.extend(value)
        elif isinstance(value, str) and value and len(value) < 1024 and "\n" not in value:
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                if path.is_file() and not path.resolve().is_relative_to(workspace):
                    found[value] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
    return found


def stage_key(stage, inputs: dict[str, Any], *, code_module: str, policy: dict[str, Any],
              base_dir: Path, workspace: Path, tether_version: str) -> StageKey:
    """The key of one stage run (see the module docstring)."""
    config = _digest({"stage": stage.stage, "plugin": stage.plugin, "step": stage.step, "params": stage.params,
                      "inputs": stage.inputs, "produces": stage.produces, "policy": policy})
    ids = _digest({arg: getattr(record, "id", None) for arg, record in sorted(inputs.items())})
    code = _digest({"tether": tether_version, "module": _source_digest(code_module),
                    "files": _file_digests(stage.params, base_dir, workspace.resolve())})
    return StageKey(config=config, inputs=ids, code=code)


class EarlierRuns:
    """The keyed stage runs of a chain's recent runs, newest first."""

    def __init__(self, runs: list[Any]) -> None:
        self.by_digest: dict[str, str] = {}
        self.latest: dict[str, dict[str, str]] = {}
        for run in runs:
            for stage_run in run.stages:
                if not stage_run.key or stage_run.status not in ("succeeded", "reused"):
                    continue
                key = StageKey(**stage_run.key)
                self.by_digest.setdefault(key.digest, stage_run.output_id)
                self.latest.setdefault(stage_run.id, stage_run.key)

    def output_for(self, key: StageKey) -> str | None:
        """The output id of an earlier stage run with exactly this key."""
        return self.by_digest.get(key.digest)

    def why_rerun(self, stage_id: str, key: StageKey) -> str:
        """Why a stage with ``key`` cannot reuse the latest run of ``stage_id``."""
        before = self.latest.get(stage_id)
        if before is None:
            return "new"
        changed = [part for part, value in key.as_dict().items() if before.get(part) != value]
        names = {"config": "params changed", "inputs": "input changed", "code": "code changed"}
        return "rerun: " + ", ".join(names[part] for part in changed) if changed else "rerun"
