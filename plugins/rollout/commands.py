"""``tether deploy start|status|promote|abort|rollback|ls|show``.

A model version is named as anywhere else (``mv-churn-3``, ``churn@3``,
``churn@champion``); a deployment by its id (or a unique prefix) or by its environment
(the deployment governing it now). Exit codes: 0 success, 2 bad input or an illegal
transition (``tether: error: ...``).
"""

from __future__ import annotations

from typing import Any

import click
from tether.commands import emit, host_of, json_option, open_workspace, print_table, workspace_option


@click.group()
def deploy() -> None:
    """Start, follow and end deployments (batch, shadow, canary, blue_green)."""


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-p key=value`` pairs as nested params (``analysis.min_requests=50``); values are YAML."""
    from tether.documents import parse_yaml
    from tether.errors import ConfigError

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p/--param: expected KEY=VALUE, got {pair!r}")
        *parents, last = key.strip().split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"-p/--param: '{part}' is given both as a value and as a mapping")
        node[last] = parse_yaml(text, f"--param {key}") if text.strip() else ""
    return params


def _context(ctx: click.Context, ws):
    from tether.context import RunContext

    return RunContext(host=host_of(ctx), workspace=ws)


def _deployment(ws, ref: str):
    """The deployment ``ref`` names: an id (or unique prefix), or an environment's active one."""
    from .state import active_deployment, current

    found = ws.store.get(ref, kind="deployment")
    if found is None and not ref.startswith("deploy-"):
        found = active_deployment(ws.store, ref)
        if found is not None:
            return found
    if found is None:
        found = ws.resolve(ref, kind="deployment", hint="tether deploy ls")
    return current(ws.store, found)


def _row(dep) -> list[Any]:
    steps = "→".join(f"{s:g}" for s in dep.steps) if dep.steps else ""
    return [dep.id, dep.environment or "-", dep.strategy, dep.state, dep.model_version_id,
            dep.stable_version_id or "-", f"{dep.weight:g}%", steps, dep.actor or "-",
            dep.created_at.strftime("%Y-%m-%d %H:%M:%S")]


COLUMNS = ["deployment", "environment", "strategy", "state", "version", "stable", "weight", "steps", "by", "created"]


@deploy.command()
@click.argument("model_version")
@click.option("--strategy", "-s", default="batch", show_default=True, help="Rollout strategy (a rollout plugin).")
@click.option("--env", "-e", "environment", default=None, help="Environment (default: the strategy's).")
@click.option("--param", "-p", "pairs", multiple=True, metavar="KEY=VALUE",
              help="A strategy parameter (repeatable; nested keys with dots, values as YAML).")
@click.option("--snapshot", default=None, help="Snapshot to score (batch; or pass -p source=FILE).")
@workspace_option
@json_option
@click.pass_context
def start(ctx, model_version, strategy, environment, pairs, snapshot, workspace, json_output):
    """Deploy MODEL_VERSION (e.g. churn@champion) with a rollout strategy."""
    from .state import record_start

    ws = open_workspace(ctx, workspace)
    params = _params(pairs)
    if environment is not None:
        params.setdefault("environment", environment)
    backend = host_of(ctx).backends.create("rollout", strategy, params, where="")
    context = _context(ctx, ws)
    if hasattr(backend, "preflight"):
        backend.preflight(context=context)
    mv = ws.resolve(model_version, kind="model_version", hint="tether models ls")
    snap = ws.resolve(snapshot, kind="snapshot") if snapshot else None
    dep = backend.deploy(mv, snap, context=context)
    parents = [(mv.id, "model_version")] + ([(snap.id, "snapshot")] if snap else [])
    if dep.bundle_id:
        parents.append((dep.bundle_id, "bundle"))
    record_start(ws.store, dep, parents=parents)
    emit(ctx, dep, lambda: _print_started(dep))


def _print_started(dep) -> None:
    click.echo(f"deployment {dep.id}: {dep.model_version_id} {dep.strategy} in '{dep.environment}', {dep.state}, "
               f"weight {dep.weight:g}%" + (f", stable {dep.stable_version_id}" if dep.stable_version_id else ""))
    if dep.location:
        click.echo(f"predictions: {dep.location} ({dep.details.get('rows', 0)} rows)")


@deploy.command()
@click.argument("environment", required=False)
@workspace_option
@json_option
@click.pass_context
def status(ctx, environment, workspace, json_output):
    """The deployment governing ENVIRONMENT now (every environment without one)."""
    from .state import active_deployment, deployments

    ws = open_workspace(ctx, workspace)
    names = [environment] if environment else sorted({d.environment for d in deployments(ws.store) if d.environment})
    active = {name: active_deployment(ws.store, name) for name in names}
    if environment and active[environment] is None:
        from tether.errors import NotFoundError

        raise NotFoundError(f"no deployment governs environment '{environment}' (see `tether deploy ls`)")
    emit(ctx, active, lambda: print_table(COLUMNS, [_row(d) for d in active.values() if d is not None]))


def _decide(ctx, ref: str, workspace: str, action, **kwargs) -> None:
    from .state import current

    ws = open_workspace(ctx, workspace)
    dep = _deployment(ws, ref)
    result = action(ws.store, dep, **kwargs)
    after = current(ws.store, ws.store.get(dep.id, kind="deployment"))
    data = {"deployment": after, "serving": result}
    emit(ctx, data, lambda: print_table(COLUMNS, [_row(after)] + ([_row(result)] if result is not None
                                                                  and result.id != after.id else [])))


def _operator_decision(name: str, action: str, doc: str, **fixed) -> None:
    """Add ``tether deploy NAME DEPLOYMENT [--reason]``: an operator's decision, recorded
    with ``action`` of ``tether.plugins.rollout.state``."""

    @deploy.command(name=name, help=doc)
    @click.argument("deployment")
    @click.option("--reason", default="", help="Why (recorded).")
    @workspace_option
    @json_option
    @click.pass_context
    def command(ctx, deployment, reason, workspace, json_output):
        from .state import abort, advance, roll_back

        decide = {"advance": advance, "abort": abort, "roll_back": roll_back}[action]
        _decide(ctx, deployment, workspace, decide, reason=reason, evidence={"source": "operator"}, **fixed)


_operator_decision("promote", "advance", "Move DEPLOYMENT (or ENVIRONMENT's) to its next step, or switch it fully.",
                   decision="promote")
_operator_decision("abort", "abort", "Stop a pending or active rollout; the stable version serves.")
_operator_decision("rollback", "roll_back", "Roll DEPLOYMENT (or ENVIRONMENT's) back to the version before it.")


@deploy.command(name="ls")
@click.option("--env", "-e", "environment", default=None, help="Only this environment.")
@click.option("--state", default=None, help="Only deployments in this state now.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(min=1))
@workspace_option
@json_option
@click.pass_context
def ls(ctx, environment, state, limit, workspace, json_output):
    """Deployments, newest first, with their state now."""
    from .state import current, deployments

    ws = open_workspace(ctx, workspace)
    found = [current(ws.store, d) for d in deployments(ws.store, environment)]
    found = [d for d in found if state is None or d.state == state][:limit]
    emit(ctx, found, lambda: print_table(COLUMNS, [_row(d) for d in found]) if found
         else click.echo("no deployments"))


@deploy.command()
@click.argument("deployment")
@workspace_option
@json_option
@click.pass_context
def show(ctx, deployment, workspace, json_output):
    """One deployment and every decision made about it, with the evidence."""
    import json

    from .state import events

    ws = open_workspace(ctx, workspace)
    dep = _deployment(ws, deployment)
    history = events(ws.store, dep.id)

    def human() -> None:
        print_table(COLUMNS, [_row(dep)])
        facts = [["fallback", json.dumps(dep.fallback)], ["rollback target", dep.rollback_target or "-"],
                 ["bundle", dep.bundle_id or "-"], ["location", dep.location or "-"],
                 ["details", json.dumps(dep.details, sort_keys=True, default=str)]]
        if dep.analysis:
            facts.append(["analysis", json.dumps(dep.analysis, sort_keys=True)])
        click.echo("")
        print_table(["field", "value"], facts)
        if history:
            click.echo("")
            print_table(["#", "action", "from", "to", "weight", "by", "when", "reason", "evidence"],
                        [[e.version, e.action, e.from_state, e.to_state, f"{e.weight:g}%", e.actor,
                          e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.reason or "-",
                          json.dumps(e.evidence, sort_keys=True, default=str)] for e in history])

    emit(ctx, {"deployment": dep, "events": history}, human)
