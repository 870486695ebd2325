"""Evaluate, register and deploy: evaluators with gates, the workspace registry, batch scoring.

The stage hooks call only the contracts of ``tether.backends`` (``evaluate``,
``register``, ``deploy``), so any evaluator, registry or deployer plugin can stand in.

Modules: ``evaluators`` (``GatedEvaluator``, ``ClassificationEvaluator``,
``RegressionEvaluator``), ``registry`` (``WorkspaceRegistry``) and ``batch`` (``BatchDeployer``).
"""

from tether import hookimpl


@hookimpl(trylast=True)
def tether_evaluate(model, features, stage, context):
    return context.backend(stage).evaluate(model, features, context=context)


@hookimpl(trylast=True)
def tether_register(model, evaluation, stage, context):
    return context.backend(stage).register(model, evaluation, context=context)


@hookimpl(trylast=True)
def tether_deploy(model_version, snapshot, stage, context):
    return context.backend(stage).deploy(model_version, snapshot, context=context)


@hookimpl
def tether_add_backends(backends):
    from .batch import BatchDeployer
    from .evaluators import ClassificationEvaluator, RegressionEvaluator
    from .registry import WorkspaceRegistry

    for cls in (ClassificationEvaluator, RegressionEvaluator, WorkspaceRegistry, BatchDeployer):
        backends.add(cls)
