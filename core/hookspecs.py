"""Every hook tether calls: the reference manual for plugin authors.

Hooks are called with keyword arguments only. An implementation may accept any subset of
a hook's arguments, so hooks can gain arguments without breaking plugins. Implementations
are module-level functions (or methods) decorated with ``@tether.hookimpl`` and named
exactly like the spec.

Lifecycle stage hooks are ``firstresult``: the first non-``None`` answer wins. The
built-in plugins answer last (``trylast``) by calling the backend named in the stage's
``plugin:``, so a plugin can take over a whole stage, or observe every stage with a
``wrapper=True`` implementation that sees the result and any exception at its ``yield``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from .backends import Backends
    from .config import StageConfig
    from .context import RunContext
    from .manager import PluginHost
    from .records import (
        DatasetSnapshot,
        Deployment,
        Evaluation,
        FeatureSet,
        ModelVersion,
        MonitorReport,
        Run,
        SplitManifest,
        TrainedModel,
    )

PROJECT = "tether"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- Set-up hooks: called once per plugin host ----------------------------------------


@hookspec(historic=True)
def tether_configure(host: PluginHost) -> None:
    """Called once all plugins are loaded; also for plugins registered later.

    :param host: the plugin host, giving access to ``host.backends``.

    Example::

        @hookimpl
        def tether_configure(host):
            host.log.debug("my-plugin ready")
    """


@hookspec(historic=True)
def tether_add_backends(backends: Backends) -> None:
    """Add backend classes: storage, stores, sources, split strategies, checks, tests...

    A backend is an attrs class with ``kind`` and ``name`` class variables; a chain selects
    it with ``plugin: <name>`` and its attributes are the stage's ``params``. Adding a name
    that is already taken for that kind is an error.

    This hook is called the first time backends are needed, not when the plugin is
    imported; it is also where a plugin imports the modules defining its own record kinds
    (``@tether.records.record``), so they are known before any record is read.

    :param backends: the registry; call ``backends.add(cls)``. A plugin may also declare the
        chain ``policy`` section it reads (``backends.add_policy(section, check)``) and how
        references to its records resolve beyond ids (``backends.add_reference(kind,
        resolve)``; the registry resolves ``churn@champion`` this way).

    Example::

        @attrs.frozen(kw_only=True)
        class WeeklySplit(tether.backends.SplitStrategy):
            name: ClassVar[str] = "weekly"
            test_weeks: int = 4

            def assign(self, frame, *, context):
                ...

        @hookimpl
        def tether_add_backends(backends):
            backends.add(WeeklySplit)
    """


@hookspec(historic=True)
def tether_add_commands(cli: click.Group) -> None:
    """Add subcommands to the ``tether`` command line.

    :param cli: the root click group.

    Example::

        @hookimpl
        def tether_add_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from my plugin")
    """


# --- Run hooks: called once per chain run ------------------------------------------------


@hookspec
def tether_run_started(run: Run, context: RunContext) -> None:
    """A chain run has been recorded as ``running`` and its first stage is about to start.

    :param run: the run record.
    :param context: the run's services (store, storage, backends, log).

    Example (an experiment tracker)::

        @hookimpl
        def tether_run_started(run, context):
            tracker.start(run_name=run.id, tags={"chain": run.chain})
    """


@hookspec
def tether_run_finished(run: Run, context: RunContext) -> None:
    """A chain run ended; ``run.status`` is ``succeeded`` or ``failed`` (see ``run.error``).

    :param run: the final run record, with every stage's outcome.
    :param context: the run's services.

    Example::

        @hookimpl
        def tether_run_finished(run, context):
            tracker.end(status=run.status)
    """


# --- Lifecycle stages ------------------------------------------------------------------


@hookspec(firstresult=True)
def tether_snapshot(stage: StageConfig, context: RunContext) -> DatasetSnapshot | None:
    """Capture an immutable, content-addressed version of a dataset.

    The built-in answer reads the source backend named in ``stage.plugin`` (``csv``,
    ``parquet``, ``sql``, ``python``...), fingerprints the data and stores it.
    Stops at first non-None result.

    :param stage: this stage's config (``plugin``, ``params``, ``id``).
    :param context: the run's services.

    Example (refuse snapshots of a dataset marked frozen)::

        @hookimpl(wrapper=True)
        def tether_snapshot(stage, context):
            snapshot = yield
            if snapshot.name in FROZEN:
                raise tether.DataError(f"dataset {snapshot.name} is frozen")
            return snapshot
    """


@hookspec(firstresult=True)
def tether_split(snapshot: DatasetSnapshot, stage: StageConfig, context: RunContext) -> SplitManifest | None:
    """Split a snapshot into train/validation/test and check the split for leakage.

    The built-in answer calls the split strategy named in ``stage.plugin``, records the
    assignment by row fingerprint, and runs the leakage checks of the chain's policy.
    Stops at first non-None result.

    :param snapshot: the snapshot to split.
    :param stage: this stage's config.
    :param context: the run's services.

    Example (a tracker observing every split)::

        @hookimpl(wrapper=True)
        def tether_split(stage, context):
            manifest = yield
            tracker.log(stage.id, sizes=manifest.sizes)
            return manifest
    """


@hookspec(firstresult=True)
def tether_featurize(
    snapshot: DatasetSnapshot, split: SplitManifest, stage: StageConfig, context: RunContext
) -> FeatureSet | None:
    """Fit the feature transform on the training split only and compute every split's features.

    The built-in answer uses the featurizer named in ``stage.plugin`` and stores the fitted
    transform as a content-addressed artifact that scoring and serving load unchanged.
    Stops at first non-None result.

    :param snapshot: the snapshot the split was made of.
    :param split: the split manifest; only its ``train`` rows may be used for fitting.
    :param stage: this stage's config.
    :param context: the run's services.

    Example (log the feature count)::

        @hookimpl(wrapper=True)
        def tether_featurize(context):
            features = yield
            context.log.info("features", n=len(features.feature_names))
            return features
    """


@hookspec(firstresult=True)
def tether_evaluate(
    model: TrainedModel, features: FeatureSet, stage: StageConfig, context: RunContext
) -> Evaluation | None:
    """Measure a trained model on a held-out split and compare it with a baseline.

    The built-in answer runs the evaluator named in ``stage.plugin`` (``classification``,
    ``regression``) and applies the gates in ``stage.params``. Stops at first non-None result.

    :param model: the trained model to evaluate.
    :param features: the feature set whose held-out matrix is scored.
    :param stage: this stage's config.
    :param context: the run's services.

    Example (add a fairness finding)::

        @hookimpl(wrapper=True)
        def tether_evaluate(model, context):
            evaluation = yield
            return attrs.evolve(evaluation, findings=evaluation.findings + (check(model),))
    """


@hookspec(firstresult=True)
def tether_register(
    model: TrainedModel, evaluation: Evaluation | None, stage: StageConfig, context: RunContext
) -> ModelVersion | None:
    """Register a trained model as the next version of a named model.

    The built-in answer refuses a model whose evaluation did not pass its gates and writes
    the version row in one transaction. Stops at first non-None result.

    :param model: the trained model.
    :param evaluation: its evaluation, or ``None`` if the chain has no evaluate stage.
    :param stage: this stage's config (``params.model_name`` names the model).
    :param context: the run's services.

    Example (notify a channel)::

        @hookimpl(wrapper=True)
        def tether_register(context):
            version = yield
            notify(f"{version.name} v{version.version} registered")
            return version
    """


@hookspec(firstresult=True)
def tether_deploy(
    model_version: ModelVersion, snapshot: DatasetSnapshot | None, stage: StageConfig, context: RunContext
) -> Deployment | None:
    """Put a registered model version to work, e.g. batch-score a snapshot.

    The built-in answer calls the rollout strategy named in ``stage.plugin`` (``batch``,
    ``shadow``, ``canary``, ``blue_green``) and records the deployment.
    Stops at first non-None result.

    :param model_version: the version to deploy.
    :param snapshot: the data to score, for batch scoring (``None`` if there is none).
    :param stage: this stage's config.
    :param context: the run's services.

    Example (block deploys on Fridays)::

        @hookimpl(tryfirst=True)
        def tether_deploy(stage):
            if datetime.date.today().weekday() == 4:
                raise tether.StageError("no deploys on Fridays")
    """


@hookspec(firstresult=True)
def tether_monitor(
    reference: DatasetSnapshot | None,
    current: DatasetSnapshot | None,
    deployment: Deployment | None,
    stage: StageConfig,
    context: RunContext,
) -> MonitorReport | None:
    """Compare a current window with a reference: drift, data health, model behaviour.

    The built-in answer runs the monitor named in ``stage.plugin`` with its drift tests and
    health checks and raises the alerts its rules define. Stops at first non-None result.

    :param reference: the reference snapshot (by default the training snapshot).
    :param current: the current window (by default the latest snapshot).
    :param deployment: the latest deployment, whose predictions can be monitored.
    :param stage: this stage's config.
    :param context: the run's services.

    Example (page someone on a critical verdict)::

        @hookimpl(wrapper=True)
        def tether_monitor(context):
            report = yield
            if report.verdict == "critical":
                pager.trigger(report.id)
            return report
    """


def hook_names() -> list[str]:
    """Names of every hook in this module, in definition order."""
    return [name for name, value in globals().items() if name.startswith("tether_") and callable(value)]
