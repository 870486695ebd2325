"""``tether mlflow sync``: copy the workspace's model registry into MLflow's."""

from __future__ import annotations

import click
from tether.commands import emit, host_of, json_option, open_workspace, print_table, workspace_option


@click.group()
def mlflow() -> None:
    """The MLflow bridge: registry sync (runs are mirrored by the mlflow tracker)."""


@mlflow.command("sync")
@click.argument("names", nargs=-1)
@click.option("--tracking-uri", default="", help="MLflow tracking URI (e.g. sqlite:///mlflow.db); "
              "default: $MLFLOW_TRACKING_URI.")
@click.option("--runs", is_flag=True, help="Also mirror past runs MLflow lacks (before the registry, so "
              "versions link to them).")
@click.option("--experiment", default="", help="With --runs: the MLflow experiment (default: each run's name).")
@workspace_option
@json_option
@click.pass_context
def sync(ctx, names: tuple[str, ...], tracking_uri: str, runs: bool, experiment: str, workspace: str,
         json_output: bool) -> None:
    """Copy model versions, their statuses (tag tether.status) and aliases of every model,
    or of the models NAMES, into the MLflow model registry; syncing again changes nothing."""
    from .names import display_uri, resolve_uri
    from .sync import sync_registry, sync_runs

    uri = resolve_uri(tracking_uri, "--tracking-uri")
    tracker = host_of(ctx).backends.create("tracker", "mlflow", {"tracking_uri": uri, "experiment": experiment})
    ws = open_workspace(ctx, workspace)
    mirrored = sync_runs(ws, tracker) if runs else []
    rows = sync_registry(ws.store, tracker.client, names)

    def human() -> None:
        if mirrored:
            print_table(["run", "mlflow run", "action"], [[r["run"], r["mlflow_run"], r["action"]] for r in mirrored],
                        title=f"runs mirrored to {display_uri(tracker.uri)}")
        if not rows:
            click.echo(f"no models in {ws.root}")
            return
        print_table(["model", "version", "mlflow version", "status", "aliases", "action"],
                    [[r["model"], r["version"], r["mlflow_version"], r["status"], ", ".join(r["aliases"]),
                      r["action"]] for r in rows], title=f"synced to {display_uri(tracker.uri)}")

    emit(ctx, {"runs": mirrored, "models": rows} if runs else rows, human)
