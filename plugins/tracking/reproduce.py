"""``tether reproduce``: re-run a recorded chain run and say whether it reproduced.

The recorded chain text is parsed again (relative paths resolved against the recorded
chain file's folder), cut before its first ``register``, ``deploy`` or ``monitor`` stage
(reproducing must not register, deploy or alert), and run with every stage forced except
the snapshot stages, which are pinned to the recorded snapshots (verified against their
digests first). The new model artifacts and metrics are compared with the recorded ones;
when they differ, the recorded ingredients that differ now are named: git commit or
uncommitted diff, step code, Python and package versions, data, seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
from tether.errors import ConfigError, IntegrityError, NotFoundError, TetherError

#: stages a reproduction stops before: they change the world rather than compute a result
SIDE_EFFECTS = ("register", "deploy", "monitor")


@attrs.frozen(kw_only=True)
class Reproduction:
    """The outcome: ``reproduced`` and, per check, what was recorded and what came out."""

    run_id: str
    new_run_id: str | None
    reproduced: bool
    artifacts: dict[str, tuple[str, str | None]]  # stage id -> (recorded digest, new digest)
    metrics: dict[str, tuple[float, float | None]]  # metric -> (recorded, new), differing ones
    ingredients: dict[str, tuple[Any, Any]]  # what differs now: name -> (recorded, now)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "new_run": self.new_run_id, "reproduced": self.reproduced,
                "error": self.error,
                "artifacts": {k: {"recorded": a, "new": b} for k, (a, b) in self.artifacts.items()},
                "metrics": {k: {"recorded": a, "new": b} for k, (a, b) in self.metrics.items()},
                "ingredients": {k: {"recorded": a, "now": b} for k, (a, b) in self.ingredients.items()}}


def recorded_chain(run: Any, host: Any) -> Any:
    """The recorded chain, validated again, without its side-effect stages."""
    from tether.config import build_chain
    from tether.documents import parse_text

    if not run.config:
        raise ConfigError(f"run {run.id} did not run a chain (it was recorded with tether.start_run); "
                          "there is no chain to reproduce")
    path = Path(run.chain_path) if run.chain_path else None
    if path is not None and not path.parent.is_dir():
        raise NotFoundError(f"run {run.id}: the folder of its chain file {path} is gone; relative paths in "
                            "the chain cannot be resolved")
    suffix = path.suffix.lower() if path is not None else ".yaml"
    raw = parse_text(run.config, str(path or "recorded chain"), suffix)
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, list):
        raise ConfigError(f"run {run.id}: its recorded chain has no stages")
    cut = next((i for i, s in enumerate(stages) if isinstance(s, dict) and s.get("stage") in SIDE_EFFECTS),
               len(stages))
    if cut == 0:
        raise ConfigError(f"run {run.id}: nothing to reproduce before its first {stages[0].get('stage')} stage")
    raw = {**raw, "stages": stages[:cut]}
    return build_chain(raw, host, text=run.config, path=path,
                       base_dir=path.parent if path is not None else Path.cwd())


def _recorded_outputs(run: Any, store: Any, chain: Any) -> dict[str, Any]:
    kept = {s.id for s in chain.stages}
    found = {s.id: store.get(s.output_id) for s in run.stages if s.output_id and s.id in kept}
    return {sid: record for sid, record in found.items() if record is not None}


def _pinned(chain: Any, recorded: dict[str, Any], storage: Any) -> tuple[dict[str, Any], dict[str, tuple]]:
    pinned, problems = {}, {}
    for stage in chain.stages:
        record = recorded.get(stage.id)
        if stage.stage != "snapshot" or record is None:
            continue
        try:
            for ref in record.objects:
                storage.verify(ref)
        except (IntegrityError, NotFoundError) as exc:
            problems[f"data.{stage.id}"] = (record.fingerprint, f"altered: {str(exc).splitlines()[0]}")
            continue
        pinned[stage.id] = record
    return pinned, problems


def _close(a: float, b: float | None) -> bool:
    return b is not None and (a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def _compare_outputs(run: Any, recorded: dict[str, Any], new_run: Any, outputs: dict[str, Any]):
    artifacts = {}
    for sid, record in recorded.items():
        if record.kind == "model":
            new = outputs.get(sid)
            artifacts[sid] = (record.artifact.digest, new.artifact.digest if new is not None else None)
    expected = dict(run.metrics)
    for sid, record in recorded.items():  # runs recorded before metrics were tracked
        if record.kind == "evaluation":
            prefix = "" if sid == "evaluate" else f"{sid}."
            for key, value in record.metrics.items():
                expected.setdefault(prefix + key, value)
    got = new_run.metrics if new_run is not None else {}
    metrics = {k: (v, got.get(k)) for k, v in sorted(expected.items())
               if isinstance(v, (int, float)) and not _close(float(v), got.get(k))}
    return artifacts, metrics


def ingredients(run: Any, new_run: Any | None, chain: Any) -> dict[str, tuple[Any, Any]]:
    """The recorded ingredients that differ now: commit, diff, step code, versions, data, seeds."""
    from tether.provenance import code_version, environment

    from .diff import compare

    code_now = new_run.code if new_run is not None else code_version(chain.base_dir)
    env_now = new_run.environment if new_run is not None else environment()
    found: dict[str, tuple[Any, Any]] = {}
    for key in ("git_commit", "git_dirty", "git_diff_sha256"):
        if key in run.code and run.code.get(key) != code_now.get(key):
            found[f"code.{key}"] = (run.code.get(key), code_now.get(key))
    if new_run is not None:
        new_keys = {s.id: s.key.get("code") for s in new_run.stages}
        for stage in run.stages:
            old = stage.key.get("code")
            if old and stage.id in new_keys and new_keys[stage.id] and new_keys[stage.id] != old:
                found[f"code.stage.{stage.id}"] = (old, new_keys[stage.id])
        for key, pair in compare({k: v for k, v in run.data.items() if k in new_run.data},
                                 {k: v for k, v in new_run.data.items() if k in run.data}).items():
            found[f"data.{key}"] = (pair[0].get("id") if pair[0] else None, pair[1].get("id") if pair[1] else None)
        for key, pair in compare(run.seeds, new_run.seeds).items():
            found[f"seeds.{key}"] = pair
    if run.environment.get("python") and run.environment.get("python") != env_now.get("python"):
        found["environment.python"] = (run.environment.get("python"), env_now.get("python"))
    recorded_packages = run.environment.get("packages", {})
    for name, pair in compare(recorded_packages, env_now.get("packages", {})).items():
        if name in recorded_packages:
            found[f"environment.packages.{name}"] = pair
    return found


def reproduce(workspace: Any, host: Any, run: Any) -> Reproduction:
    """Re-run ``run`` (a chain run recorded in ``workspace``) and compare the outcome."""
    from tether.runner import Runner

    chain = recorded_chain(run, host)
    recorded = _recorded_outputs(run, workspace.store, chain)
    pinned, problems = _pinned(chain, recorded, workspace.storage)
    runner = Runner(chain, host, workspace)
    new_run, error = None, None
    try:
        new_run = runner.run(force=True, pinned=pinned, tags={"reproduces": run.id})
    except TetherError as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        latest = workspace.store.find("run", name=chain.name, limit=1)
        new_run = latest[0] if latest and latest[0].tags.get("reproduces") == run.id else None
    artifacts, metrics = _compare_outputs(run, recorded, new_run, getattr(runner, "outputs", {}))
    same = error is None and not problems and not metrics and all(a == b for a, b in artifacts.values())
    found = {} if same else {**problems, **ingredients(run, new_run, chain)}
    return Reproduction(run_id=run.id, new_run_id=new_run.id if new_run is not None else None, reproduced=same,
                        artifacts=artifacts, metrics=metrics, ingredients=found, error=error)
