"""Leakage checks: each a ``LeakageCheck`` backend returning structured findings.

Checks (``policy.leakage`` names, default action in brackets):

* ``exact_duplicates`` [fail]: identical rows in more than one split;
* ``near_duplicates`` [warn]: rows equal within a tolerance (``atol + tolerance * max(|a|, |b|)``;
  text compared after case and whitespace normalisation) in more than one split;
* ``entity_overlap`` [fail]: an entity (``entity_column``) in more than one split;
* ``temporal_order`` [fail]: training rows later than the start of validation or test,
  validation rows later than the start of test;
* ``feature_availability`` [fail]: features whose value becomes known after the
  prediction time (from a feature catalogue);
* ``target_leakage`` [warn]: a single feature predicting the label almost perfectly
  (ROC AUC for class labels, R² for numeric ones);
* ``missingness_leakage`` [warn]: a field whose missingness predicts the label (an
  after-the-fact field filled in for one class only);
* ``label_shift`` [warn]: the label's distribution differs between splits, or the
  label has missing values.

A chain's ``policy.leakage`` maps a check name to ``fail``, ``warn`` or ``off``, or to a
mapping with ``action`` plus the check's options (see docs/leakage.md).

Modules: ``input`` (:class:`~.input.LeakageInput`, feature timings from a catalogue),
``evidence`` (helpers for findings), the checks ``duplicates``, ``near_duplicates``,
``entities``, ``temporal``, ``target`` (with ``scoring``) and ``label_shift``; ``near_join`` (the
near-duplicate join), ``options`` (validators of the checks' and strategies' options); ``policy``
(running checks by policy, ``LeakageFailed``), ``report`` (text and HTML), ``audit``
(checking a data file whose split is a column, in this process or, for ``exact_duplicates``,
``near_duplicates`` and ``entity_overlap``, on an execution engine) and ``commands``
(``tether leakage``).
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)


@hookimpl
def tether_add_backends(backends):
    from .policy import BUILTIN_CHECKS, check_policy

    for cls in BUILTIN_CHECKS:
        backends.add(cls)
    backends.add_policy("leakage", check_policy)
