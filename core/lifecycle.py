"""The lifecycle table: every stage, the hook that answers it, the backend kind it
selects with ``plugin:``, the records it consumes and the record it produces.

The config validator, the runner and the docs read this one table; a test checks that
each entry's inputs are exactly its hook's arguments besides ``stage`` and ``context``.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class StageSpec:
    """What a lifecycle stage consumes and produces."""

    hook: str  # the hookspec answering the stage, called with its inputs, stage and context
    backend_kind: str  # the kind of backend ``plugin:`` names
    output: str  # the record kind it returns
    inputs: dict[str, str]  # hook argument -> record kind
    optional: tuple[str, ...] = ()  # inputs that may be None
    default_plugin: str | None = None


#: The lifecycle, in the order stages usually run.
STAGES: dict[str, StageSpec] = {
    "snapshot": StageSpec(hook="tether_snapshot", backend_kind="source", output="snapshot", inputs={}),
    "split": StageSpec(hook="tether_split", backend_kind="split", output="split", inputs={"snapshot": "snapshot"}),
    "featurize": StageSpec(
        hook="tether_featurize", backend_kind="featurizer", output="features",
        inputs={"snapshot": "snapshot", "split": "split"}, default_plugin="sklearn",
    ),
    "evaluate": StageSpec(
        hook="tether_evaluate", backend_kind="evaluator", output="evaluation",
        inputs={"model": "model", "features": "features"},
    ),
    "register": StageSpec(
        hook="tether_register", backend_kind="registry", output="model_version",
        inputs={"model": "model", "evaluation": "evaluation"}, optional=("evaluation",), default_plugin="default",
    ),
    "deploy": StageSpec(
        hook="tether_deploy", backend_kind="rollout", output="deployment",
        inputs={"model_version": "model_version", "snapshot": "snapshot"}, optional=("snapshot",),
        default_plugin="batch",
    ),
    "monitor": StageSpec(
        hook="tether_monitor", backend_kind="monitor", output="monitor_report",
        inputs={"reference": "snapshot", "current": "snapshot", "deployment": "deployment"},
        optional=("reference", "current", "deployment"), default_plugin="drift",
    ),
}

#: Record kinds a user step may ask for by parameter name, and what else it may take.
STEP_ARGUMENTS = ("snapshot", "split", "features", "model", "evaluation", "model_version",
                  "deployment", "monitor_report")
STEP_SERVICES = ("context", "params")


def call_stage(relay, spec: StageSpec, *, inputs: dict, stage, context):
    """Call the stage's hook on ``relay`` with its inputs (absent optional ones as None)."""
    caller = getattr(relay, spec.hook)
    return caller(stage=stage, context=context, **{arg: inputs.get(arg) for arg in spec.inputs})
