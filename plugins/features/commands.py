"""``tether features apply|ls|show|skew``: the feature catalogue in the metadata store, the
model versions using each feature, and the training-serving skew check."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tether.commands import emit, host_of, json_option, open_workspace, workspace_option


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


def register(cli: click.Group) -> None:
    cli.add_command(features)
