"""Features: the catalogue, calculations, point-in-time training sets, the featurize stage,
and the training-serving skew check with its deploy gate.

Modules:

* :mod:`.catalogue`: feature definitions (record kind ``feature``) read from a YAML
  catalogue, stored versioned (``tether features apply``), and the model versions using
  each one, found through lineage.
* :mod:`.calculations`: running a definition's calculation (``module:function`` or a DuckDB
  SQL expression), building training sets, and catching calculations that use information
  from after their availability time.
* :mod:`.pit`: the point-in-time join (DuckDB ``ASOF`` join with lags, TTLs, ``available_at``).
* :mod:`.validation`: findings for input columns that break their definitions.
* :mod:`.featurizer`: the ``sklearn`` featurizer backend, user transforms, and the featurize
  stage (fitted on the training split only, stored as the artifact scoring and serving load).
* :mod:`.skew`: the skew check, offline (point-in-time join) against online (serving code
  through an online store) values for sampled entities and times.
* :mod:`.skew_gate`: ``policy.skew_gate``. The ``tether_deploy`` wrapper below runs the skew
  check before any deployer and fails the deploy stage when training and serving disagree.
* :mod:`.values`: comparing feature values and writing them into findings.
* :mod:`.commands`: ``tether features apply|ls|show|skew``.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from . import catalogue  # noqa: F401 - defines the record kind "feature"
    from .featurizer import SklearnFeaturizer
    from .skew_gate import check_policy

    backends.add(SklearnFeaturizer)
    backends.add_policy("skew_gate", check_policy)


@hookimpl(trylast=True)
def tether_featurize(snapshot, split, stage, context):
    from .featurizer import featurize

    return featurize(context.backend(stage), snapshot, split, context)


@hookimpl(wrapper=True)
def tether_deploy(model_version, stage, context):
    """The skew gate: with ``policy.skew_gate``, check training-serving skew before any
    deployer runs, and record the check in the deployment's details (:mod:`.skew_gate`)."""
    from .skew_gate import after_deploy, before_deploy

    report = before_deploy(model_version, context)
    deployment = yield
    return after_deploy(deployment, report)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)
