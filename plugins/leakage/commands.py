"""``tether leakage DATA``: audit a split made elsewhere (its split is a column)."""

from __future__ import annotations

import click
from tether.commands import create_engine, emit, engine_options, host_of, json_option, parse_engine_params


@click.command("leakage")
@click.argument("data")
@click.option("--split-column", required=True, help="Column holding each row's split (train/validation/test).")
@click.option("--entity-column", help="Entity column: no entity may be in two splits.")
@click.option("--time-column", help="Prediction time column: training must end before validation/test start.")
@click.option("--label", help="Label column: target leakage, missingness and label shift checks.")
@click.option("--features-from", "catalogue", type=click.Path(dir_okay=False),
              help="Feature catalogue YAML with availability times.")
@click.option("--ignore-column", "ignore", multiple=True, help="Leave a column out of duplicate checks (repeatable).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help="YAML file: a chain (its policy.leakage is used) or a mapping of check -> fail|warn|off.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
@engine_options
@json_option
@click.pass_context
def leakage(ctx, data, split_column, entity_column, time_column, label, catalogue, ignore, policy_file,
            html_path, engine, engine_params, json_output):
    """Audit DATA (CSV/Parquet) whose split is a column; exit 1 if a failing finding is present.

    With --engine (Parquet only), exact_duplicates, near_duplicates and entity_overlap run
    on that engine, partition by partition, without loading DATA whole; any other check that
    applies must be turned off in --policy.
    """
    from pathlib import Path

    from tether import serde
    from tether.errors import ConfigError

    from .audit import audit_frame, read_data_file
    from .input import load_catalogue
    from .policy import LeakageFailed, read_policy_file
    from .report import findings_html, format_findings

    params = parse_engine_params(engine_params)
    if params and not engine:
        raise ConfigError("--engine-param: give --engine too (the engine the parameters are for)")
    policy = read_policy_file(policy_file) if policy_file else None
    audit = {"split_column": split_column, "entity_column": entity_column, "time_column": time_column,
             "label": label, "catalogue": load_catalogue(catalogue) if catalogue else (),
             "ignore_columns": ignore, "policy": policy, "host": host_of(ctx)}
    if engine:
        from .audit import audit_on_engine

        findings, summary = audit_on_engine(data, create_engine(ctx, engine, params), **audit)
    else:
        findings, summary = audit_frame(read_data_file(data), **audit)
    failing = [f for f in findings if f.severity == "error"]
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(findings_html(findings, title=f"Leakage audit of {data}", summary=summary),
                                   encoding="utf-8")
    payload = {"data": data, "failed": bool(failing), "summary": summary,
               "findings": [serde.converter.unstructure(f) for f in findings]}

    def human():
        rows = summary.get("rows", {})
        click.echo(f"{data}: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
        click.echo(format_findings(findings))

    emit(ctx, payload, human)
    if failing:
        raise LeakageFailed(f"leakage: {len(failing)} failing findings: {', '.join(f.check for f in failing)}",
                            findings=failing)


def register(cli) -> None:
    cli.add_command(leakage)
