"""``tether evaluate PREDICTIONS``: judge a file of predictions (CSV or Parquet) with the
evaluate stage's rules; print the metrics, baselines, slices and gates, or ``--json``;
``--html FILE`` writes the offline report.

Exit codes: 0 every gate passed (or ``--fail-on never``), 1 a gate failed (the report is
printed first), 2 bad input (unreadable file, missing column, invalid parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tether.commands import check_verdicts, emit, fail_on_option, json_option, print_table


def _pairs(values: tuple[str, ...], option: str) -> dict[str, float]:
    from tether.errors import ConfigError

    out = {}
    for item in values:
        metric, sep, number = item.partition("=")
        try:
            out[metric.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise ConfigError(f"{option}: expected METRIC=NUMBER, got {item!r}")
    return out


def _read(path: str):
    from tether.plugins.tables import read_file_table
    from tether.workspace import table_to_frame

    return table_to_frame([read_file_table(Path(path))])


def _column(frame, name: str, option: str):
    from tether.errors import DataError, did_you_mean

    if name not in frame.columns:
        columns = [str(c) for c in frame.columns]
        raise DataError(f"{option}: the predictions have no column '{name}'{did_you_mean(name, columns)} "
                        f"(columns: {', '.join(columns[:12])})")
    return frame[name]


def _scores(frame, score: tuple[str, ...]):
    """One score column (binary), or ``CLASS=COLUMN`` pairs (multiclass probabilities)."""
    if not score:
        return None, None
    import numpy as np

    if len(score) == 1 and "=" not in score[0]:
        return _numbers(_column(frame, score[0], "--score"), score[0]), None

    pairs = [item.partition("=") for item in score]
    if any(not sep for _, sep, _ in pairs):
        from tether.errors import ConfigError

        raise ConfigError("--score: give one column, or CLASS=COLUMN once per class")
    classes = [c for c, _, _ in pairs]
    return np.column_stack([_numbers(_column(frame, col, "--score"), col) for _, _, col in pairs]), classes


def _numbers(column, name: str):
    import pandas as pd
    from tether.errors import DataError

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise DataError(f"--score: column '{name}' holds {column.dtype} values; scores must be numbers "
                        "(probabilities in [0, 1])")
    return column.to_numpy(dtype=float)


@click.command("evaluate")
@click.argument("predictions", type=click.Path(dir_okay=True))
@click.option("--label", "-l", required=True, help="The label column.")
@click.option("--score", "-s", multiple=True,
              help="The score column (binary: P(positive)); multiclass: CLASS=COLUMN once per class.")
@click.option("--pred", "-p", help="The predicted label (or regression value) column.")
@click.option("--slice", "slice_columns", multiple=True, help="A column to slice by (repeatable).")
@click.option("--task", type=click.Choice(["binary", "multiclass", "regression"]), help="Default: from the label.")
@click.option("--id", "id_column", help="A key column named in the error examples.")
@click.option("--min", "minimum", multiple=True, help="Gate METRIC=VALUE: at least (repeatable).")
@click.option("--max", "maximum", multiple=True, help="Gate METRIC=VALUE: at most (repeatable).")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False),
              help="A YAML file of evaluate stage params (slices, baselines, gates...).")
@click.option("--html", "html", type=click.Path(dir_okay=False), help="Write the HTML report here.")
@fail_on_option
@json_option
@click.pass_context
def evaluate_command(ctx, predictions, label, score, pred, slice_columns, task, id_column, minimum, maximum,
                     params_file, html, fail_on, json_output):
    """Evaluate a file of PREDICTIONS (CSV or Parquet) against its label column."""
    from .api import evaluate
    from .report import write_html

    params: dict[str, Any] = _params_file(params_file) if params_file else {}
    params["min"] = {**params.get("min", {}), **_pairs(minimum, "--min")}
    params["max"] = {**params.get("max", {}), **_pairs(maximum, "--max")}
    params["slices"] = [*params.get("slices", []), *({"column": c} for c in slice_columns)]
    frame = _read(predictions)
    scores, classes = _scores(frame, score)
    hard = _column(frame, pred, "--pred").to_numpy() if pred else None
    ids = _column(frame, id_column, "--id").to_numpy() if id_column else None
    y = _column(frame, label, "--label")
    ev = evaluate(y, scores if scores is not None else hard, pred=hard if scores is not None else None,
                  task=task, classes=classes, data=frame, ids=ids, id_column=id_column or "", label=label,
                  source=f"file:{Path(predictions).name}", **params)
    if html:
        write_html(html, ev, {"predictions": str(predictions)})
    emit(ctx, ev, lambda: print_evaluation(ev))
    check_verdicts([("ok" if ev.passed else "critical", f"evaluation {ev.id}: gates failed")], fail_on)


def _params_file(path: str) -> dict[str, Any]:
    """The params of a YAML file; its folder is importable, as a chain's is, so the rules
    and predicates it names (``module:function``) may live beside it."""
    import sys

    from tether.documents import read_yaml_file
    from tether.errors import ConfigError

    data = read_yaml_file(path, "evaluate params")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of evaluate params, got {type(data).__name__}")
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return data


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


#: the metrics the slice table shows first, per task
SLICE_COLUMNS = {"binary": ("roc_auc", "accuracy", "precision", "recall"),
                 "multiclass": ("accuracy", "f1_macro", "recall_macro"),
                 "regression": ("mae", "rmse", "r2")}


def print_evaluation(ev) -> None:
    """The evaluation as aligned tables: metrics (with intervals and baselines), slices, gates."""
    names = [m for m in ev.metrics if m != "rows"]
    threshold = f", threshold {ev.threshold['value']:.3f} ({ev.threshold['method']})" if ev.threshold else ""
    click.echo(f"evaluation {ev.id}: {ev.task}, {int(ev.metrics.get('rows', 0)):,} rows{threshold}")
    columns = ["metric", "value", "interval", *(b.name for b in ev.baselines)]
    rows = [[m, _num(ev.metrics[m]), "-".join(f"{v:.3f}" for v in ev.intervals[m]) if m in ev.intervals else "",
             *(_num(b.metrics.get(m)) for b in ev.baselines)] for m in names]
    print_table(columns, rows)
    if ev.slices:
        gated = [o.metric for o in ev.outcomes if o.segment]
        preferred = [*gated, *SLICE_COLUMNS.get(ev.task, ())]
        shown = [m for m in dict.fromkeys(preferred) if any(m in s.metrics for s in ev.slices)][:4]
        click.echo("")
        print_table(["slice", "segment", "support", *shown],
                    [[s.slice, s.segment, f"{s.support}{' (low)' if s.low_support else ''}",
                      *(_with_interval(s, m) for m in shown)] for s in ev.slices])
    if ev.outcomes:
        click.echo("")
        print_table(["rule", "result", "message"],
                    [[o.rule, "pass" if o.passed else "FAIL", o.message] for o in ev.outcomes])
    click.echo(f"{'passed' if ev.passed else 'FAILED'}: {sum(not o.passed for o in ev.outcomes)} of "
               f"{len(ev.outcomes)} rules failed")


def _with_interval(s, metric: str) -> str:
    if metric not in s.metrics:
        return ""
    low_high = s.intervals.get(metric)
    return f"{s.metrics[metric]:.3f}" + (f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else "")
