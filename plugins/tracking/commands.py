"""``tether runs diff`` and ``tether reproduce``."""

from __future__ import annotations

import click
from tether.commands import emit, host_of, json_option, open_workspace, print_table, workspace_option


def _latest_metrics(store, run_ids: list[str]) -> dict[str, dict[str, float]]:
    latest = getattr(store, "latest_metrics", None)
    try:
        return latest(run_ids) if callable(latest) else {}
    except NotImplementedError:
        return {}


def _cell(value) -> str:
    if value is None:
        return "(absent)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@workspace_option
@json_option
@click.pass_context
def runs_diff(ctx: click.Context, run_a: str, run_b: str, workspace: str, json_output: bool) -> None:
    """Show what differs between runs RUN_A and RUN_B (ids, id prefixes or chain names):
    data, code, config (chain and params), environment, seeds and metrics, side by side."""
    from .diff import SECTIONS, backfill, change, diff_runs

    ws = open_workspace(ctx, workspace)
    a, b = (backfill(ws.store, ws.resolve(ref, kind="run")) for ref in (run_a, run_b))
    latest = _latest_metrics(ws.store, [a.id, b.id])
    differences = diff_runs(a, b, latest.get(a.id), latest.get(b.id))
    payload = {"a": a.id, "b": b.id,
               "differences": {section: {key: {"a": va, "b": vb} for key, (va, vb) in found.items()}
                               for section, found in differences.items()}}

    def human() -> None:
        rows = [[section, key, _cell(va), _cell(vb), change(va, vb) if section == "metrics" else ""]
                for section in SECTIONS for key, (va, vb) in differences[section].items()]
        if not rows:
            click.echo(f"runs {a.id} and {b.id} do not differ in data, code, config, environment, seeds or metrics")
            return
        print_table(["section", "key", a.id, b.id, "change"], rows)
        same = [s for s in SECTIONS if not differences[s]]
        if same:
            click.echo(f"same: {', '.join(same)}")

    emit(ctx, payload, human)


@click.command()
@click.argument("run_ref")
@workspace_option
@json_option
@click.pass_context
def reproduce(ctx: click.Context, run_ref: str, workspace: str, json_output: bool) -> None:
    """Re-run the chain run RUN_REF recorded (its chain text, snapshots, split and seeds),
    every stage forced, up to its first register, deploy or monitor stage; then say whether
    the model artifacts and metrics match the recorded ones and, if not, which recorded
    ingredient differs now. Exit 0: reproduced; 1: differs; 2: bad input."""
    from tether.errors import CheckFailed

    from .reproduce import reproduce as run_reproduction

    ws = open_workspace(ctx, workspace)
    run = ws.resolve(run_ref, kind="run")
    outcome = run_reproduction(ws, host_of(ctx), run)

    def human() -> None:
        verdict = "reproduced" if outcome.reproduced else "DIFFERS"
        click.echo(f"run {outcome.run_id}: {verdict} (new run {outcome.new_run_id or 'none'})")
        if outcome.error:
            click.echo(f"the reproduction failed: {outcome.error}")
        rows = [["artifact", sid, a, b or "(none)", "same" if a == b else "differs"]
                for sid, (a, b) in outcome.artifacts.items()]
        rows += [["metric", key, _cell(a), _cell(b), "differs"] for key, (a, b) in outcome.metrics.items()]
        rows += [["ingredient", key, _cell(a), _cell(b), "differs now"] for key, (a, b) in outcome.ingredients.items()]
        if rows:
            print_table(["what", "key", "recorded", "now", ""], rows)

    emit(ctx, outcome.as_dict(), human)
    if not outcome.reproduced:
        raise CheckFailed(f"run {outcome.run_id} did not reproduce"
                          + (f": {', '.join(outcome.ingredients)} differ now" if outcome.ingredients else ""))


def add_commands(cli: click.Group) -> None:
    """``reproduce`` at the top level; ``diff`` in the built-in ``runs`` group."""
    cli.add_command(reproduce)
    runs = cli.commands.get("runs")
    if isinstance(runs, click.Group):
        runs.add_command(runs_diff)
