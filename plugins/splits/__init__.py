"""The split stage: strategies that assign rows to train/validation/test, recorded by row.

Strategies (``plugin:`` names): ``random``, ``stratified``, ``group``, ``stratified_group``,
``time``, ``time_group``, ``column`` (a split made elsewhere, read from a column) and
``custom`` (a user function). Each returns one label per row: ``train``, ``validation``,
``test``, or ``excluded`` (rows left out on purpose, e.g. inside a time gap).

The stage records a :class:`~tether.records.SplitManifest`: the assignment by stable row
fingerprint (see :func:`tether.plugins.rows.row_fingerprints`), the strategy and its
parameters, a summary per split (sizes, time range, class balance, entity counts) and the
findings of the leakage checks the chain's ``policy`` enables (see
:mod:`tether.plugins.leakage`).

Modules: ``base`` (:class:`DeclaredSplit`, the base of the built-in strategies, and shared
helpers), ``shuffled`` (random, stratified), ``grouped`` (group, stratified_group),
``temporal`` (time, time_group), ``given`` (column, custom), ``stage`` (the stage and its
manifest), ``assignment`` (rows of a stored split), ``report`` (text and HTML),
``commands`` (``tether splits ls|show``).
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl(trylast=True)
def tether_split(snapshot, stage, context):
    from .stage import run_split_stage

    return run_split_stage(snapshot, stage, context)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)


@hookimpl
def tether_add_backends(backends):
    from .given import ColumnSplit, CustomSplit
    from .grouped import GroupSplit, StratifiedGroupSplit
    from .shuffled import RandomSplit, StratifiedSplit
    from .temporal import TimeGroupSplit, TimeSplit

    for cls in (RandomSplit, StratifiedSplit, GroupSplit, StratifiedGroupSplit, TimeSplit, TimeGroupSplit,
                ColumnSplit, CustomSplit):
        backends.add(cls)
