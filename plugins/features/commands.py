"""``tether features apply|ls|show|skew|join``: the feature catalogue in the metadata store, the
model versions using each feature, the training-serving skew check, and the point-in-time
join of two Parquet datasets on an engine."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tether.commands import (
    create_engine,
    emit,
    engine_options,
    host_of,
    json_option,
    open_workspace,
    parse_engine_params,
    print_table,
    workspace_option,
)


@click.group()
def features() -> None:
    """Feature definitions, the models using them, and the training-serving skew check."""


@features.command("apply")
@click.argument("catalogue", type=click.Path(dir_okay=False))
@workspace_option
@json_option
@click.pass_context
def features_apply(ctx, catalogue, workspace, json_output):
    """Store the definitions in CATALOGUE (a new version only for changed ones)."""
    from .catalogue import apply_definitions, load_catalogue

    ws = open_workspace(ctx, workspace)
    results = apply_definitions(ws.store, load_catalogue(catalogue))
    rows = [{"name": d.name, "version": d.version, "id": d.id, "status": status} for d, status in results]

    def human():
        for r in rows:
            click.echo(f"{r['status']:<9}  {r['name']}  v{r['version']}")

    emit(ctx, rows, human)


@features.command("ls")
@workspace_option
@json_option
@click.pass_context
def features_ls(ctx, workspace, json_output):
    """List the latest version of every feature with the model versions using it."""
    from .catalogue import all_definitions, models_using

    ws = open_workspace(ctx, workspace)
    rows = []
    for d in all_definitions(ws.store):
        models = models_using(ws.store, d.name)
        rows.append({"name": d.name, "version": d.version, "entity": d.entity, "owner": d.owner,
                     "availability_lag": d.availability_lag, "ttl": d.ttl, "tags": list(d.tags),
                     "models": [m["model_version"] for m in models]})

    def human():
        if not rows:
            click.echo(f"no feature definitions in {ws.root} (see `tether features apply`)")
        for r in rows:
            used = ", ".join(r["models"]) or "-"
            click.echo(f"{r['name']:<24} v{r['version']:<3} entity={r['entity'] or '-':<14} "
                       f"lag={r['availability_lag'] or '0':<5} owner={r['owner'] or '-':<12} models: {used}")

    emit(ctx, rows, human)


@features.command("show")
@click.argument("name")
@workspace_option
@json_option
@click.pass_context
def features_show(ctx, name, workspace, json_output):
    """Explain feature NAME: its definition, versions, and the model versions depending on it."""
    from tether.errors import NotFoundError, did_you_mean

    from .catalogue import all_definitions, models_using

    ws = open_workspace(ctx, workspace)
    versions = ws.store.find("feature", name=name)
    if not versions:
        names = [d.name for d in all_definitions(ws.store)]
        raise NotFoundError(f"no feature '{name}' in {ws.root}{did_you_mean(name, names)} (see `tether features ls`)")
    latest = max(versions, key=lambda d: d.version)
    data = {"definition": latest, "versions": sorted(d.version for d in versions),
            "models": models_using(ws.store, name)}
    emit(ctx, data, lambda: _print_feature(data))


def _print_feature(data) -> None:
    from .catalogue import CATALOGUE_KEYS

    latest, models = data["definition"], data["models"]
    click.echo(f"feature {latest.name} v{latest.version}  ({latest.id})")
    for key in CATALOGUE_KEYS[1:]:
        value = getattr(latest, key)
        if value not in ("", None, (), []):
            click.echo(f"  {key:<18} {list(value) if isinstance(value, tuple) else value}")
    click.echo(f"  versions           {', '.join(map(str, data['versions']))}")
    click.echo("  used by:" if models else "  used by:           (no model version yet)")
    for m in models:
        click.echo(f"    {m['model_version']}  ({m['name']} v{m['version']}, feature v{m['feature_version']}, "
                   f"{m['status']})")


@features.command("skew")
@click.option("--catalogue", "catalogue", type=click.Path(dir_okay=False),
              help="Definitions to check (default: the stored ones).")
@click.option("--source", required=True, help="Source rows: module:function, a Parquet/CSV file or a snapshot id.")
@click.option("--serving", multiple=True, metavar="FEATURE=CALCULATION",
              help="The serving implementation of a feature, if it differs from the definition.")
@click.option("--feature", "feature_names", multiple=True, help="Only these features.")
@click.option("--online-store", "store_plugin", default="sqlite", show_default=True)
@click.option("--entities", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many entities to sample.")
@click.option("--timestamps", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many times to sample per entity.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-9, show_default=True,
              help="Largest absolute difference counted as equal.")
@workspace_option
@json_option
@click.pass_context
def features_skew(ctx, catalogue, source, serving, feature_names, store_plugin, entities, timestamps,
                  tolerance, workspace, json_output):
    """Compare offline (training) and online (serving) feature values; exit 1 on mismatches."""
    from tether.context import RunContext
    from tether.errors import StageError

    from .skew_gate import run_skew_gate

    config = {"source": source, "serving": _serving_overrides(serving), "online_store": {"plugin": store_plugin},
              "entities": entities, "timestamps": timestamps, "tolerance": tolerance}
    if catalogue:
        config["catalogue"] = str(Path(catalogue).resolve())
    if feature_names:
        config["features"] = list(feature_names)
    context = RunContext(host=host_of(ctx), workspace=open_workspace(ctx, workspace))
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    report = run_skew_gate(config, context=context)
    emit(ctx, report.summary(), lambda: _print_skew(report))
    if not report.passed:
        raise StageError(f"training-serving skew beyond {report.tolerance} in {report.failed_features()}")


def _serving_overrides(serving: tuple[str, ...]) -> dict[str, str]:
    """``--serving FEATURE=CALCULATION`` options as a mapping."""
    overrides = {}
    for item in serving:
        name, sep, calc = item.partition("=")
        if not sep or not name or not calc:
            raise click.BadParameter(f"expected FEATURE=CALCULATION, got {item!r}", param_hint="--serving")
        overrides[name] = calc
    return overrides


def _print_skew(report) -> None:
    for name in report.checked:
        state = "ok" if not report.mismatches[name] else f"{report.mismatches[name]} mismatches"
        click.echo(f"{name:<24} {report.checked[name]:>6} checked  {state}")
    for e in report.examples[:10]:
        click.echo(f"  {e['feature']}: entity {e['entity']} at {e['at']}: offline {e['offline']!r}, "
                   f"online {e['online']!r}")
    click.echo("passed" if report.passed else f"FAILED (tolerance {report.tolerance})")


@features.command("join")
@click.argument("entities")
@click.argument("features_path", metavar="FEATURES")
@click.option("--output", required=True, metavar="FOLDER",
              help="New folder for the joined Parquet parts (must not exist).")
@click.option("--entity", "entity", multiple=True, required=True, metavar="COL",
              help="Entity key column, named the same in both tables (repeatable for a composite key).")
@click.option("--prediction-time", required=True, metavar="COL", help="The entity table's prediction timestamp column.")
@click.option("--feature-time", default="feature_timestamp", show_default=True, metavar="COL",
              help="The feature table's timestamp column.")
@click.option("--lag", metavar="DURATION",
              help="Availability lag: a feature row is known this long after its timestamp (1d, 6h).")
@click.option("--ttl", metavar="DURATION",
              help="Time-to-live: a value older than this at prediction time counts as missing (30d).")
@click.option("--column", "columns", multiple=True, metavar="NAME",
              help="A feature column to attach (repeatable; default: all but keys and timestamps).")
@click.option("--available-at", metavar="COL",
              help="Feature table column of the instant each row actually became known.")
@click.option("--duplicates", type=click.Choice(["error", "last"]), default="error", show_default=True,
              help="Rows sharing entity and feature timestamp: an error, or keep the last in input order.")
@engine_options
@json_option
@click.pass_context
def features_join(ctx, entities, features_path, output, entity, prediction_time, feature_time, lag, ttl, columns,
                  available_at, duplicates, engine, engine_params, json_output):
    """Point-in-time join ENTITIES with FEATURES (Parquet files or folders) into the folder --output.

    Each entity row gets the latest feature values available at its prediction time (see
    docs/features.md). Runs on the local engine unless --engine is given; the output is the
    engine's Parquet parts, each holding whole entities sorted by the entity table's row
    number (column __tether_entity_row).
    """
    from tether.errors import ConfigError

    params = parse_engine_params(engine_params)
    if params and not engine:
        raise ConfigError("--engine-param: give --engine too (the engine the parameters are for)")
    join = _join_settings(entity, prediction_time, feature_time, lag, ttl, columns, available_at, duplicates)
    if Path(output).exists():
        raise ConfigError(f"--output: '{output}' already exists; the join writes a new folder")
    _check_join_inputs(entities, features_path, join)
    name = engine or "local"
    runner = create_engine(ctx, name, params)
    if not runner.supports("point_in_time_join"):
        raise ConfigError(f"--engine: the engine '{name}' does not run point_in_time_join")
    result = runner.point_in_time_join(entities, features_path, output=output, **join)
    summary = {"output": str(output), "rows": result["rows"], "parts": result["parts"], "engine": name}
    emit(ctx, summary, lambda: print_table(["output", "rows joined", "parts", "engine"],
                                           [[summary["output"], f"{summary['rows']:,}", len(summary["parts"]), name]]))


def _join_settings(entity, prediction_time, feature_time, lag, ttl, columns, available_at,
                   duplicates) -> dict:
    """The options as ``point_in_time_join`` keywords, names and durations checked."""
    from tether.errors import ConfigError

    from .pit import to_timedelta

    names = [("--entity", e) for e in entity] + [("--prediction-time", prediction_time),
                                                  ("--feature-time", feature_time)]
    names += [("--column", c) for c in columns] + ([("--available-at", available_at)] if available_at is not None
                                                   else [])
    for option, value in names:
        if not value.strip():
            raise ConfigError(f"{option}: the column name is empty")
    for option, value in (("--lag", lag), ("--ttl", ttl)):
        if value is not None and to_timedelta(value, what=option) is None:
            raise ConfigError(f"{option}: the duration is empty; give one such as '1d', '6h' or '90min'")
    if len(set(entity)) != len(entity):
        raise ConfigError(f"--entity: a key column is given twice ({', '.join(entity)})")
    return {"entity": entity[0] if len(entity) == 1 else list(entity), "prediction_time": prediction_time,
            "feature_time": feature_time, "lag": lag, "ttl": ttl, "columns": list(columns) if columns else None,
            "available_at": available_at, "duplicates": duplicates}


def _check_join_inputs(entities: str, features_path: str, join: dict) -> None:
    """Both inputs are Parquet files or folders with the columns the join names, and the
    feature columns do not clash with the entity table's."""
    from tether.errors import DataError

    keys = [join["entity"]] if isinstance(join["entity"], str) else join["entity"]
    left = _parquet_columns("ENTITIES", entities)
    _require_columns("ENTITIES", entities, left, [("--entity", k) for k in keys]
                     + [("--prediction-time", join["prediction_time"])])
    right = _parquet_columns("FEATURES", features_path)
    wanted = [("--entity", k) for k in keys] + [("--feature-time", join["feature_time"])]
    wanted += [("--column", c) for c in join["columns"] or ()]
    wanted += [("--available-at", join["available_at"])] if join["available_at"] else []
    _require_columns("FEATURES", features_path, right, wanted)
    skip = {*keys, join["feature_time"], join["available_at"]}
    attached = join["columns"] or [c for c in right if c not in skip]
    if not attached:
        raise DataError(f"FEATURES '{features_path}' has no feature columns besides keys and timestamps")
    clash = [c for c in attached if c in left]
    if clash:
        raise DataError(f"FEATURES '{features_path}' column '{clash[0]}' is also in ENTITIES '{entities}'; "
                        "rename it, or pick the feature columns with --column")


def _parquet_columns(what: str, path: str) -> list[str]:
    """The columns of the Parquet file or folder ``path`` (hive partition columns included)."""
    from tether.errors import DataError
    from tether.plugins.engines.partitions import is_parquet, plan
    from tether.plugins.tables import CSV_SUFFIXES

    source = Path(path)
    if not source.exists():
        raise DataError(f"{what} '{path}' not found")
    if source.is_file() and source.suffix.lower() in CSV_SUFFIXES:
        raise DataError(f"{what} '{path}' is a CSV file; the join reads Parquet files or folders: convert it to "
                        "Parquet first (e.g. pandas.read_csv(...).to_parquet(...))")
    if not is_parquet(source):
        raise DataError(f"{what} '{path}' is not a Parquet file (.parquet, .pq) or a folder of Parquet files")
    return plan(source).names


def _require_columns(what: str, path: str, have: list[str], wanted: list[tuple[str, str]]) -> None:
    """Raise a DataError naming the option, the input and the first column it lacks."""
    from tether.errors import DataError

    for option, column in wanted:
        if column not in have:
            raise DataError(f"{option}: {what} '{path}' has no column '{column}' (columns: {', '.join(have)})")


def register(cli: click.Group) -> None:
    cli.add_command(features)
