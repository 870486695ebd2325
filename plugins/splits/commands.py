"""``tether splits ls|show``: list and explain stored split manifests."""

from __future__ import annotations

import click
from tether.commands import emit, json_option, open_workspace, workspace_option


@click.group("splits")
def splits():
    """Inspect split manifests."""


@splits.command("ls")
@workspace_option
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def splits_ls(ctx, workspace, limit, json_output):
    """List split manifests, newest first."""
    from .report import manifest_line

    ws = open_workspace(ctx, workspace)
    found = ws.store.find("split", limit=limit)

    def human():
        if not found:
            click.echo(f"no splits in {ws.root}")
        for manifest in found:
            click.echo(manifest_line(manifest))

    emit(ctx, found, human)


def _find_manifest(ws, split_id: str):
    """The manifest with this id, or the only one whose id starts with it."""
    from tether.errors import NotFoundError

    manifest = ws.store.get(split_id, kind="split")
    if manifest is not None:
        return manifest
    matches = ws.store.find("split", prefix=split_id, limit=2)
    if len(matches) == 1:
        return matches[0]
    raise NotFoundError(f"no split '{split_id}' in {ws.root} (split ids look like split-0123abcd...)")


@splits.command("show")
@click.argument("split_id")
@workspace_option
@json_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
@click.pass_context
def splits_show(ctx, split_id, workspace, json_output, html_path):
    """Explain a split: sizes, time range, class balance and entities per split, findings."""
    from .report import describe_manifest, write_html

    ws = open_workspace(ctx, workspace)
    manifest = _find_manifest(ws, split_id)
    if html_path:
        write_html(manifest, html_path)
    emit(ctx, manifest, lambda: click.echo(describe_manifest(manifest)))


def register(cli) -> None:
    cli.add_command(splits)
