"""Evaluation: task-aware metrics, baselines scored on the same rows, slices with
bootstrap intervals, error analysis and gates; the evaluate stage, ``tether evaluate``
and ``tether.evaluate``.

Modules, by concern:

* :mod:`.tasks` - tasks, their metric names, task detection;
  :mod:`.inputs` - labels, predictions and scores checked and encoded;
* :mod:`.metrics` - point metrics (scikit-learn), per-class table, confusion matrix,
  curves, calibration, threshold sweep and choice, residuals; :mod:`.counts` - the
  threshold metrics from confusion counts, vectorised;
* :mod:`.ranking` - hit rate@k, MRR, nDCG@k over ranked lists (also for RAG retrieval);
* :mod:`.bootstrap` - vectorised bootstrap intervals; :mod:`.slices` - segments of raw columns;
* :mod:`.baselines` - dummy, user rule, re-scored model versions; :mod:`.error_analysis`;
* :mod:`.params` - the evaluate params; :mod:`.gates` - judging them;
* :mod:`.engine` - one evaluation assembled; :mod:`.evaluators` - the stage's backends
  (``auto``, ``classification``, ``regression``); :mod:`.api` - ``tether.evaluate``;
  :mod:`.commands` - ``tether evaluate``; :mod:`.report` - the HTML page.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl(trylast=True)
def tether_evaluate(model, features, stage, context):
    return context.backend(stage).evaluate(model, features, context=context)


@hookimpl
def tether_add_backends(backends):
    from .evaluators import ClassificationEvaluator, RegressionEvaluator, StageEvaluator

    for cls in (StageEvaluator, ClassificationEvaluator, RegressionEvaluator):
        backends.add(cls)


@hookimpl
def tether_add_commands(cli):
    from .commands import evaluate_command

    cli.add_command(evaluate_command)
