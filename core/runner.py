"""Runs a chain: stages in order, each stage's record handed on, every record and lineage
edge written to the metadata store in one transaction per stage.

A stage that raises leaves the store as it was before that stage, plus the run marked
``failed`` with the reason. Every run is tracked (:mod:`tether.tracking`): the run
record and its metrics go to the store tracker and to the chain's ``trackers:``; the
runner feeds them the chain's params, each stage's output and evaluation metrics.

A stage whose config, inputs and code are unchanged since an earlier run reuses that
run's output (:mod:`tether.reuse`); ``from_stage`` reruns that stage and every later one
regardless, ``force`` reruns them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .config import ChainConfig, StageConfig, resolve_step, step_arguments
from .context import RunContext
from .errors import ConfigError, StageError, TetherError
from .lifecycle import STAGES, call_stage
from .liveness import mark_crashed, this_process
from .log import get_logger, redact
from .provenance import code_version, distributions_of, environment, flatten, seeds_in
from .records import RECORD_KINDS, Run, StageRun, TrainedModel, new_id, object_refs, utcnow
from .reuse import REUSABLE, EarlierRuns, StageKey, stage_key
from .tracking import ActiveRun, track_output, tracker_entries
from .workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PluginHost


def chain_params(chain: ChainConfig) -> dict[str, Any]:
    """Every stage's params flattened to key paths under its stage id (``train.C``)."""
    params: dict[str, Any] = {}
    for stage in chain.stages:
        params.update(flatten(stage.params, stage.id))
    return params


def new_run(chain: ChainConfig) -> Run:
    """The record of a run of ``chain`` about to start: code, environment, params, seeds."""
    seeds: dict[str, int] = {}
    modules = list(chain.plugins) + [s.step.split(":")[0] for s in chain.stages if s.step]
    for stage in chain.stages:
        seeds.update(seeds_in(stage.params, stage.id))
    return Run(id=new_id("run"), chain=chain.name, chain_digest=chain.digest, status="running", config=chain.text,
               code=code_version(chain.base_dir), environment=environment(distributions_of(modules)),
               params=chain_params(chain), seeds=seeds, chain_path=str(chain.path.resolve()) if chain.path else "",
               **this_process())


class Runner:
    """Executes one chain against one workspace."""

    def __init__(self, chain: ChainConfig, host: PluginHost, workspace: Workspace | None = None,
                 on_stage: Callable[[StageConfig, str], None] | None = None) -> None:
        self.chain = chain
        self.host = host
        self.workspace = workspace or Workspace.for_chain(chain, host)
        self.on_stage = on_stage or (lambda stage, event: None)
        self.log = get_logger("tether.run", chain=chain.name)

    # -- inputs ------------------------------------------------------------------------------

    def _resolve_inputs(self, stage: StageConfig, outputs: dict[str, Any], func=None) -> dict[str, Any]:
        if stage.stage == "step":
            wanted = {a: a for a in step_arguments(func) if a in RECORD_KINDS}
            optional: tuple[str, ...] = ()
        else:
            wanted, optional = STAGES[stage.stage].inputs, STAGES[stage.stage].optional
        inputs: dict[str, Any] = {}
        for arg, kind in wanted.items():
            if arg in stage.inputs:
                inputs[arg] = outputs[stage.inputs[arg]]
                continue
            inputs[arg] = self._default_input(stage, arg, kind, outputs)
            if inputs[arg] is None and arg not in optional:
                raise ConfigError(f"{stage.where}: no {kind} available for '{arg}'")
        return inputs

    def _default_input(self, stage: StageConfig, arg: str, kind: str, outputs: dict[str, Any]):
        latest = [r for r in outputs.values() if r.kind == kind]
        splits = [r for r in outputs.values() if r.kind == "split"]
        # featurize uses the snapshot its split was made of; monitor's reference is the
        # training snapshot (that of the latest split), its current window the latest snapshot.
        if kind == "snapshot" and (stage.stage == "featurize" or (stage.stage == "monitor" and arg == "reference")):
            if splits:
                wanted_id = splits[-1].snapshot_id
                match = [r for r in latest if r.id == wanted_id]
                return match[-1] if match else self.workspace.get(wanted_id, kind="snapshot")
            return latest[0] if latest else None
        return latest[-1] if latest else None

    # -- running -------------------------------------------------------------------------

    def run(self, *, from_stage: str | None = None, force: bool = False, pinned: dict[str, Any] | None = None,
            tags: dict[str, str] | None = None) -> Run:
        """Run the chain and return the final run record; ``self.outputs`` maps stage ids
        to their output records. Unchanged stages are reused unless forced: every stage
        with ``force``, the stages from ``from_stage`` on with ``from_stage``. ``pinned``
        (stage id -> record) uses those records as the stages' outputs without running
        them (``tether reproduce`` pins the recorded snapshots). The chain's engine is
        closed afterwards, however the run ends."""
        try:
            return self._run(from_stage=from_stage, force=force, pinned=pinned, tags=tags)
        finally:
            engine = self.chain.backends.get("engine")
            if engine is not None:
                engine.close()

    def _run(self, *, from_stage: str | None, force: bool, pinned: dict[str, Any] | None,
             tags: dict[str, str] | None) -> Run:
        chain, store = self.chain, self.workspace.store
        start_index = chain.index_of(from_stage) if from_stage else None
        run = new_run(chain)
        if tags:
            run = attrs.evolve(run, tags=dict(tags))
        context = RunContext(host=self.host, workspace=self.workspace, chain=chain, run=run,
                             log=self.log.bind(run_id=run.id), engine=chain.backends.get("engine"))
        self._preflight(context)
        earlier = EarlierRuns(mark_crashed(store, store.find("run", name=chain.name, limit=20)))
        active = ActiveRun(run, context, tracker_entries(self.host, chain.trackers, chain.tracker_backends))
        context.tracker = active
        try:
            active.start()
        except TetherError as exc:
            active.end("failed", error=str(exc))
            raise
        self.workspace.remember(chain)
        hook = self.host.hook
        hook.tether_run_started(run=active.record, context=context)
        self.outputs: dict[str, Any] = {}
        self.pinned = dict(pinned or {})
        stage_runs: list[StageRun] = []
        failure: BaseException | None = None
        for stage in chain.stages:
            forced = "forced (--force)" if force else (
                f"forced (--from {from_stage})" if start_index is not None and stage.index >= start_index else "")
            stage_run, failure = self._execute(stage, hook, context, earlier, forced)
            stage_runs.append(stage_run)
            if failure is not None:
                break
            # progress, so a run whose process dies still shows what it completed
            active.update(stages=tuple(stage_runs))
            try:
                active.flush()
            except TetherError as exc:  # a tracker with on_error: fail
                failure = exc
                break
        error = (stage_runs[-1].error or redact(_one_line(failure))) if failure is not None else None
        active.update(stages=tuple(stage_runs))
        try:
            run = active.end("failed" if failure else "succeeded", error=error)
        except TetherError as exc:  # a tracker with on_error: fail failed at the end
            failure, error, run = failure or exc, error or str(exc), active.record
        context.run, context.stage = run, None
        hook.tether_run_finished(run=run, context=context)
        if failure is not None:
            _reraise(failure, error)
        return run

    def _execute(self, stage: StageConfig, hook, context: RunContext, earlier: EarlierRuns,
                 forced: str) -> tuple[StageRun, BaseException | None]:
        """Reuse or run one stage and store its record; a failure is returned, not raised."""
        started = utcnow()
        self.on_stage(stage, "start")
        context.stage = stage
        context.log = self.log.bind(run_id=context.run.id, stage=stage.id)
        t0 = time.perf_counter()
        key, reason = None, forced
        try:
            func, inputs = self._inputs_for(stage)
            reusable = stage.stage in REUSABLE
            # only reusable stages are keyed: a snapshot's params may name a large file that
            # the stage reads anyway, and deploy/monitor always run
            key = self._key(stage, func, inputs, context) if reusable else None
            reused, why = self.pinned.get(stage.id), "pinned"
            if reused is None and not forced and reusable:
                reused, why = self._earlier_output(earlier, key), "unchanged"
            if reused is not None:
                self.outputs[stage.id] = reused
                track_output(context.tracker, stage, reused)
                self.on_stage(stage, "reused")
                return _stage_run(stage, "reused", output_id=reused.id, key=key.as_dict() if key else {},
                                  reason=why, started_at=started, ended_at=utcnow()), None
            reason = reason or (earlier.why_rerun(stage.id, key) if reusable
                                else "reads its source" if stage.stage == "snapshot" else "always runs")
            _note_local(stage, context)
            record, parents = self._run_stage(stage, func, inputs, hook, context)
            self.workspace.store.put(record, parents=parents, run_id=context.run.id)
            _release_objects(self.workspace.storage, record)
            track_output(context.tracker, stage, record)
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by run()
            error = redact(f"{stage.where} ({stage.id}): {_one_line(exc)}")
            context.log.error("stage failed", error=error)
            self.on_stage(stage, "failed")
            return _stage_run(stage, "failed", started_at=started, ended_at=utcnow(), error=error,
                              key=key.as_dict() if key else {}, reason=reason), exc
        self.outputs[stage.id] = record
        context.log.info("stage done", output=record.id, seconds=round(time.perf_counter() - t0, 3))
        self.on_stage(stage, "done")
        return _stage_run(stage, "succeeded", output_id=record.id, started_at=started, ended_at=utcnow(),
                          key=key.as_dict() if key else {}, reason=reason), None

    def _key(self, stage: StageConfig, func, inputs: dict[str, Any], context: RunContext) -> StageKey:
        from . import __version__

        module = func.__module__ if func is not None else type(context.backend(stage)).__module__
        return stage_key(stage, inputs, code_module=module, policy=self.chain.policy, base_dir=self.chain.base_dir,
                         workspace=self.workspace.root, tether_version=__version__)

    def _earlier_output(self, earlier: EarlierRuns, key: StageKey):
        output_id = earlier.output_for(key)
        return self.workspace.store.get(output_id) if output_id else None

    def _preflight(self, context: RunContext) -> None:
        """Let backends check their inputs (files exist, servers answer) before the run is recorded."""
        for stage in self.chain.stages:
            if stage.spec is None:
                continue
            backend = context.backend(stage)
            preflight = getattr(backend, "preflight", None)
            if callable(preflight):
                context.stage = stage
                preflight(context=context)
        context.stage = None

    def _inputs_for(self, stage: StageConfig):
        """``(step function or None, input records by argument)`` of a stage."""
        if stage.stage == "step":
            func = resolve_step(stage)
            return func, self._resolve_inputs(stage, self.outputs, func)
        return None, self._resolve_inputs(stage, self.outputs)

    def _run_stage(self, stage: StageConfig, func, inputs: dict[str, Any], hook, context: RunContext):
        if func is not None:
            kwargs = dict(inputs)
            wanted = step_arguments(func)
            if "context" in wanted:
                kwargs["context"] = context
            if "params" in wanted:
                kwargs["params"] = dict(stage.params)
            record = self._step_record(stage, func(**kwargs), inputs, context)
        else:
            record = call_stage(hook, stage.spec, inputs=inputs, stage=stage, context=context)
            if record is None:
                raise StageError(f"no plugin answered the {stage.stage} stage (plugin '{stage.plugin}')")
        expected = stage.output_kind
        if getattr(record, "kind", None) != expected:
            raise StageError(
                f"{stage.stage} returned {type(record).__name__}, expected a {expected} record"
            )
        parents = [(r.id, arg) for arg, r in inputs.items() if r is not None]
        return record, parents

    def _step_record(self, stage: StageConfig, result: Any, inputs: dict[str, Any], context: RunContext):
        if getattr(result, "kind", None) in RECORD_KINDS:
            return result
        if stage.produces != "model":
            raise StageError(f"step {stage.step} must return a {stage.produces} record, got {type(result).__name__}")
        if result is None:
            raise StageError(f"step {stage.step} returned None; return the trained model")
        artifact = self.workspace.put_object(result)
        features = inputs.get("features")
        module = type(result).__module__.split(".")[0]
        params = {}
        get_params = getattr(result, "get_params", None)
        if callable(get_params):
            params = {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                      for k, v in get_params(deep=False).items()}
        return TrainedModel(id=TrainedModel.id_for(artifact), artifact=artifact, framework=module,
                            estimator=type(result).__qualname__, feature_set_id=features.id if features else None,
                            params=params, step=stage.step)


def _release_objects(storage: Any, record: Any) -> None:
    """The record referencing its objects is committed: a storage that protects objects of
    writers in progress from gc (``release``, optional) may let go of them."""
    release = getattr(storage, "release", None)
    if callable(release):
        release([ref.key for ref in object_refs(record)])


def _stage_run(stage: StageConfig, status: str, **fields: Any) -> StageRun:
    return StageRun(id=stage.id, stage=stage.stage, plugin=stage.plugin or stage.step, status=status, **fields)


def _reraise(failure: BaseException, error: str | None) -> None:
    """Raise a stage's failure with the stage's location in front of its message."""
    if isinstance(failure, TetherError):
        # keep the class (and exit code, and any attributes); prefix the stage
        failure.args = (error, *failure.args[1:])
        raise failure
    if isinstance(failure, Exception):
        raise StageError(error) from failure
    raise failure  # KeyboardInterrupt, SystemExit


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, TetherError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _note_local(stage: StageConfig, context: RunContext) -> None:
    """On a non-local engine, log that a stage with no partitioned version runs locally (a
    backend declaring ``engine_operations`` asks ``context.engine_for``, which logs a decline)."""
    engine = context.engine
    if engine is None or engine.name == "local":
        return
    if stage.spec is None or not getattr(context.backend(stage), "engine_operations", ()):
        reason = ("a user step runs in this process" if stage.spec is None
                  else f"the {stage.stage} plugin '{stage.plugin}' has no partitioned version")
        context.log.warning("stage runs locally", stage=stage.id, engine=engine.name, reason=reason)


def run_chain(chain: ChainConfig, host: PluginHost, *, from_stage: str | None = None, force: bool = False,
              workspace: Workspace | None = None, on_stage=None) -> tuple[Run, dict[str, Any]]:
    """Run ``chain`` and return the run record with each stage's output record by stage id."""
    runner = Runner(chain, host, workspace, on_stage=on_stage)
    run = runner.run(from_stage=from_stage, force=force)
    return run, runner.outputs
