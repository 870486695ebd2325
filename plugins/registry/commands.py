"""``tether models ...`` and ``tether audit ...``.

Every command takes a model version as ``mv-churn-3``, ``churn@3``, ``churn@champion`` or
``churn@production`` (``churn`` alone is its latest version). Exit codes: 0 success, 1 an
audit log that fails verification, 2 bad input or a change the policy refuses (one line
naming the rule).
"""

from __future__ import annotations

import click
from tether.commands import emit, json_option, open_workspace, print_table, workspace_option

STATUS_CHOICE = click.Choice(["experimental", "candidate", "production", "deprecated", "archived"])
reason_option = click.option("--reason", default="", help="Why: recorded with the change and in the audit log.")


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


def _policy(ws):
    from .policy import load_policy

    return load_policy(ws.root)


@click.group()
def models() -> None:
    """Registered models: versions, statuses, aliases, approvals and history."""


@models.command("ls")
@click.argument("name", required=False)
@workspace_option
@json_option
@click.pass_context
def models_ls(ctx, name: str | None, workspace: str, json_output: bool) -> None:
    """List models, or with NAME the versions of that model (newest first)."""
    from .state import load, model_names

    ws = open_workspace(ctx, workspace)
    if name is None:
        rows = []
        for model in model_names(ws.store):
            log = load(ws.store, model)
            statuses = [log.status(v) for v in log.versions]
            rows.append({"name": model, "versions": len(log.versions), "latest": log.versions[-1].version,
                         "statuses": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
                         "aliases": log.current_aliases()})

        def human() -> None:
            if not rows:
                click.echo(f"no models in {ws.root}")
                return
            print_table(["model", "versions", "latest", "statuses", "aliases"],
                        [[r["name"], r["versions"], r["latest"],
                          ", ".join(f"{k} {n}" for k, n in r["statuses"].items()),
                          ", ".join(f"{a}->v{r_id.rsplit('-', 1)[-1]}" for a, r_id in r["aliases"].items())]
                         for r in rows])

        emit(ctx, rows, human)
        return
    from .state import resolve_ref

    resolve_ref(ws.store, name)  # an unknown name: one line with did-you-mean
    log = load(ws.store, name)
    held = log.current_aliases()
    rows = [{"id": v.id, "version": v.version, "status": log.status(v),
             "aliases": sorted(a for a, mv in held.items() if mv == v.id), "model_id": v.model_id,
             "evaluation_id": v.evaluation_id, "registered_at": v.created_at, "registered_by": v.registered_by}
            for v in reversed(log.versions)]
    emit(ctx, rows, lambda: print_table(
        ["version", "id", "status", "aliases", "model", "registered (UTC)", "by"],
        [[r["version"], r["id"], r["status"], ", ".join(r["aliases"]), r["model_id"], _when(r["registered_at"]),
          r["registered_by"]] for r in rows]))


@models.command("show")
@click.argument("ref")
@workspace_option
@json_option
@click.pass_context
def models_show(ctx, ref: str, workspace: str, json_output: bool) -> None:
    """Show a model version's card: evidence, status, aliases, approvals, deployment."""
    from .state import approval_state, deployed_at, load, resolve_ref

    ws = open_workspace(ctx, workspace)
    mv = resolve_ref(ws.store, ref)
    log = load(ws.store, mv.name)
    evaluation = ws.store.get(mv.evaluation_id, kind="evaluation") if mv.evaluation_id else None
    card = {"model_version": mv, "status": log.status(mv),
            "aliases": sorted(a for a, held in log.current_aliases().items() if held == mv.id),
            "evaluation_passed": evaluation.passed if evaluation else None,
            "approvals": approval_state(log, mv), "deployed_at": deployed_at(ws.store, mv)}

    def human() -> None:
        rows = [["status", card["status"]], ["aliases", ", ".join(card["aliases"])],
                ["model", mv.model_id], ["training data", mv.snapshot_id], ["features", mv.feature_set_id],
                ["code version", mv.code_version], ["run", mv.run_id],
                ["evaluation", f"{mv.evaluation_id} ({'passed' if evaluation.passed else 'FAILED'})"
                 if evaluation else mv.evaluation_id],
                ["metrics", ", ".join(f"{k}={v:.4g}" for k, v in sorted(mv.metrics.items()))],
                ["intended use", mv.intended_use], ["limitations", "; ".join(mv.limitations)],
                ["owner", mv.owner], ["license", mv.license], ["description", mv.description],
                ["registered", f"{_when(mv.created_at)} by {mv.registered_by or '?'}"],
                ["deployed", _when(card["deployed_at"])]]
        for to, state in card["approvals"].items():
            rows.append([f"approval ({to})", f"requested by {state['requested_by']}; approved by "
                         f"{', '.join(state['approved_by']) or 'nobody yet'}"
                         + (f"; rejected by {', '.join(state['rejected_by'])}" if state["rejected_by"] else "")])
        print_table(["field", "value"], rows, title=f"{mv.id} ({mv.name} v{mv.version})")

    emit(ctx, card, human)


@models.command("promote")
@click.argument("ref")
@click.option("--to", "to", required=True, type=STATUS_CHOICE, help="The status to move the version to.")
@reason_option
@click.option("--override", is_flag=True, help="Record an override of a failed evaluation gate (needs --reason).")
@workspace_option
@json_option
@click.pass_context
def models_promote(ctx, ref: str, to: str, reason: str, override: bool, workspace: str, json_output: bool) -> None:
    """Move a version to another status under the workspace policy (policy.yaml)."""
    from .state import resolve_ref, transition

    ws = open_workspace(ctx, workspace)
    mv = resolve_ref(ws.store, ref)
    record = transition(ws.store, mv, to, reason=reason, override=override, policy=_policy(ws))
    emit(ctx, record, lambda: click.echo(f"{mv.id}: {record.from_status} -> {record.to_status}"
                                         + (" (evaluation gate overridden)" if record.override else "")))


@models.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--move", is_flag=True, help="Move the alias if another version holds it.")
@click.option("--remove", is_flag=True, help="Remove the alias (REF names the model).")
@reason_option
@workspace_option
@json_option
@click.pass_context
def models_alias(ctx, ref: str, alias: str, move: bool, remove: bool, reason: str, workspace: str,
                 json_output: bool) -> None:
    """Point ALIAS (e.g. champion) at a version, so NAME@ALIAS names it."""
    from .state import remove_alias, resolve_ref, set_alias

    ws = open_workspace(ctx, workspace)
    mv = resolve_ref(ws.store, ref)
    if remove:
        record = remove_alias(ws.store, mv.name, alias, reason=reason)
        emit(ctx, record, lambda: click.echo(f"{mv.name}@{alias} removed (was {record.previous_id})"))
        return
    record = set_alias(ws.store, mv, alias, move=move, reason=reason)
    moved = f" (moved from {record.previous_id})" if record.previous_id else ""
    emit(ctx, record, lambda: click.echo(f"{mv.name}@{record.alias} -> {mv.id}{moved}"))


def _decision(action: str):
    @click.argument("ref")
    @click.option("--to", "to", type=STATUS_CHOICE, required=action == "request",
                  help="The status the request is for" + ("." if action == "request" else
                                                          " (default: the version's only open request)."))
    @reason_option
    @workspace_option
    @json_option
    @click.pass_context
    def command(ctx, ref: str, to: str | None, reason: str, workspace: str, json_output: bool) -> None:
        from .state import decide, load, resolve_ref

        ws = open_workspace(ctx, workspace)
        mv = resolve_ref(ws.store, ref)
        if to is None:
            log = load(ws.store, mv.name)
            open_ = [s for s in STATUS_CHOICE.choices if log.open_request(mv, s)[0] is not None]
            if len(open_) != 1:
                raise click.UsageError(f"{mv.id} has {len(open_) or 'no'} open requests"
                                       f"{' (' + ', '.join(open_) + ')' if open_ else ''}; pass --to STATUS")
            to = open_[0]
        record = decide(ws.store, mv, to, action, reason=reason, policy=_policy(ws))
        emit(ctx, record, lambda: click.echo(f"{mv.id}: {action} {to} by {record.actor} ({record.id})"))

    return command


models.command("request", help="Ask for a version to move to a status that needs approvals.")(_decision("request"))
models.command("approve", help="Approve the open request for a version (as $TETHER_ACTOR or your user).")(
    _decision("approve"))
models.command("reject", help="Reject the open request for a version (needs --reason).")(_decision("reject"))


@models.command("history")
@click.argument("name")
@click.option("--at", "at_", metavar="WHEN", help="Only what held at WHEN: a date (the whole day, UTC) or a "
              "date-time, e.g. 2026-03-03.")
@workspace_option
@json_option
@click.pass_context
def models_history(ctx, name: str, at_: str | None, workspace: str, json_output: bool) -> None:
    """Which version held which status, alias or environment, from when to when."""
    from .history import at, history, parse_when
    from .state import resolve_ref

    window = parse_when(at_) if at_ else None
    ws = open_workspace(ctx, workspace)
    resolve_ref(ws.store, name.partition("@")[0])  # an unknown model: one line with did-you-mean
    rows = history(ws.store, name.partition("@")[0])
    if window is not None:
        rows = at(rows, *window)
    out = [{**r, "from": r["from"].isoformat(), "to": r["to"].isoformat() if r["to"] else None} for r in rows]

    def human() -> None:
        if not rows:
            click.echo(f"nothing held by a version of {name} at {at_}" if at_ else f"no history for {name}")
            return
        print_table(["version", "held", "value", "from (UTC)", "to (UTC)", "by", "reason"],
                    [[r["version"], r["what"], r["value"], _when(r["from"]), _when(r["to"]) or "now", r["actor"],
                      r["reason"]] for r in rows])

    emit(ctx, out, human)


@click.group()
def audit() -> None:
    """The hash-chained audit log of registrations, transitions, approvals and deployments."""


@audit.command("ls")
@click.option("--subject", help="Only entries about this record id (e.g. mv-churn-3).")
@click.option("--limit", default=50, show_default=True, help="Newest entries to show.")
@workspace_option
@json_option
@click.pass_context
def audit_ls(ctx, subject: str | None, limit: int, workspace: str, json_output: bool) -> None:
    """List audit entries, newest last."""
    from tether import audit as log

    ws = open_workspace(ctx, workspace)
    found = [e for e in log.entries(ws.store) if subject is None or e.subject == subject][-limit:]

    def human() -> None:
        if not found:
            click.echo(f"no audit entries in {ws.root}")
            return
        print_table(["#", "at (UTC)", "actor", "action", "subject", "details"],
                    [[e.version, _when(e.created_at), e.actor, e.action, e.subject,
                      ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()) if v not in (None, "", [], False))]
                     for e in found])

    emit(ctx, found, human)


@audit.command("verify")
@click.option("--expect-head", metavar="HASH", help="The newest entry's hash recorded earlier (detects entries "
              "removed from the end).")
@workspace_option
@json_option
@click.pass_context
def audit_verify(ctx, expect_head: str | None, workspace: str, json_output: bool) -> None:
    """Recompute the hash chain; exit 1 naming the first edited, reordered or deleted entry."""
    from tether import audit as log
    from tether.errors import IntegrityError, TetherError

    ws = open_workspace(ctx, workspace)
    problems = log.verify(ws.store, expect_head=expect_head)
    try:
        count, head = log.head(ws.store)
    except (TetherError, ValueError):  # the newest entry itself is unreadable (a problem above)
        count, head = None, None

    def human() -> None:
        if not problems:
            click.echo(f"audit log intact: {count} entries, head {head}")
        for problem in problems[1:]:  # the first one is the error line
            click.echo(f"problem: {problem}")

    emit(ctx, {"ok": not problems, "entries": count, "head": head, "problems": problems}, human)
    if problems:
        raise IntegrityError(f"audit log fails verification: {problems[0]}")


def register(cli) -> None:
    for command in (models, audit):
        cli.add_command(command)
