"""Lineage as a graph of records and the runs that produced them (``tether lineage``).

The metadata store keeps edges between records (``parent -> child`` with a relation);
a record's producing run is the run whose stage output it was (or, for a model version
registered from Python, its ``run_id``). :func:`build` walks the edges up, down or both
from one record; :func:`render` prints the walk as a tree in which every record is
shown once (a record reached again, such as a snapshot both the split and the features
were made from, is marked ``shown above``) and a run appears where it changes.
"""

from __future__ import annotations

from typing import Any


def _producers(store: Any) -> dict[str, str]:
    """record id -> the id of the first run that produced it."""
    made: dict[str, str] = {}
    for run in reversed(store.find("run")):  # oldest first: the first producer wins
        for stage in run.stages:
            if stage.output_id and stage.status == "succeeded":
                made.setdefault(stage.output_id, run.id)
    return made


def build(store: Any, record: Any, *, upstream: bool = True, downstream: bool = True) -> dict[str, Any]:
    """``{"record", "nodes", "edges", "runs", "model_versions", "deployments"}`` for ``record``.

    ``nodes`` maps every record id reached to ``{"kind", "run"}``; ``edges`` are
    ``{"parent", "child", "relation"}`` between records plus ``{"parent": run, "child":
    record, "relation": "produced"}`` for each record's run; ``runs`` describes each run once.
    ``model_versions`` and ``deployments`` list those reached downstream (a deployment
    recorded without an edge is found through its ``model_version_id``).
    """
    walked = store.lineage(record.id)
    nodes: dict[str, dict[str, Any]] = {record.id: {"kind": record.kind, "run": None}}
    edges: list[dict[str, Any]] = []
    if upstream:
        for e in walked["upstream"]:
            nodes.setdefault(e["parent"], {"kind": e["kind"], "run": None})
            edges.append({"parent": e["parent"], "child": e["child"], "relation": e["relation"]})
    if downstream:
        for e in walked["downstream"]:
            nodes.setdefault(e["child"], {"kind": e["kind"], "run": None})
            edges.append({"parent": e["parent"], "child": e["child"], "relation": e["relation"]})
        _add_deployments(store, nodes, edges)
    producers = _producers(store)
    runs: dict[str, dict[str, Any]] = {}
    for node_id, node in nodes.items():
        run_id = producers.get(node_id) or (getattr(record, "run_id", None) if node_id == record.id else None)
        if run_id is None and node["kind"] == "model_version":
            mv = store.get(node_id, kind="model_version")
            run_id = getattr(mv, "run_id", None)
        node["run"] = run_id
        if run_id and run_id not in runs:
            run = store.get(run_id, kind="run")
            runs[run_id] = ({"chain": run.chain, "status": run.status, "started_at": run.started_at.isoformat()}
                            if run is not None else {})
        if run_id:
            edges.append({"parent": run_id, "child": node_id, "relation": "produced"})
    reached = [n for n in nodes if n != record.id]
    return {"record": record, "nodes": nodes, "edges": edges, "runs": runs,
            "model_versions": sorted(n for n in reached if nodes[n]["kind"] == "model_version"),
            "deployments": sorted(n for n in reached if nodes[n]["kind"] == "deployment")}


def _add_deployments(store: Any, nodes: dict[str, dict[str, Any]], edges: list[dict[str, Any]]) -> None:
    versions = {n for n, node in nodes.items() if node["kind"] == "model_version"}
    if not versions:
        return
    linked = {(e["parent"], e["child"]) for e in edges}
    for dep in store.find("deployment"):
        if dep.model_version_id in versions and (dep.model_version_id, dep.id) not in linked:
            nodes.setdefault(dep.id, {"kind": "deployment", "run": None})
            edges.append({"parent": dep.model_version_id, "child": dep.id, "relation": "model_version"})


def render(graph: dict[str, Any], *, upstream: bool = True, downstream: bool = True) -> list[str]:
    """The graph as text lines: the record, then its ancestors (``<-``) and/or descendants
    (``->``) as trees, the runs involved and, downstream, the model versions and deployments."""
    record, nodes = graph["record"], graph["nodes"]
    root_run = nodes[record.id]["run"]
    lines = [f"{record.kind} {record.id}" + (f"  (run {root_run})" if root_run else "")]
    record_edges = [e for e in graph["edges"] if e["relation"] != "produced"]
    if upstream:
        parents: dict[str, list[dict[str, Any]]] = {}
        for e in record_edges:
            parents.setdefault(e["child"], []).append(e)
        lines.append("  made from:" if parents.get(record.id) else "  made from: (nothing recorded)")
        _tree(record.id, parents, "parent", "<-", nodes, lines, set(), 2)
    if downstream:
        children: dict[str, list[dict[str, Any]]] = {}
        for e in record_edges:
            children.setdefault(e["parent"], []).append(e)
        lines.append("  used by:" if children.get(record.id) else "  used by: (nothing recorded)")
        _tree(record.id, children, "child", "->", nodes, lines, set(), 2)
    for run_id, run in graph["runs"].items():
        lines.append(f"  run {run_id}: chain {run.get('chain', '?')}, {run.get('status', '?')}, "
                     f"started {run.get('started_at', '?')[:19]}")
    if downstream and (graph["model_versions"] or graph["deployments"]):
        lines.append(f"  model versions: {', '.join(graph['model_versions']) or 'none'}")
        lines.append(f"  deployments: {', '.join(graph['deployments']) or 'none'}")
    return lines


def _tree(node: str, links: dict[str, list[dict[str, Any]]], far: str, arrow: str,
          nodes: dict[str, dict[str, Any]], lines: list[str], seen: set[str], depth: int) -> None:
    """Depth-first, each record expanded once; a run is named where it differs from its neighbour's."""
    seen.add(node)
    for e in sorted(links.get(node, []), key=lambda e: (e["relation"], e[far])):
        other = e[far]
        info = nodes.get(other, {"kind": None, "run": None})
        indent = "  " * depth
        if other in seen:
            lines.append(f"{indent}{arrow} {info['kind'] or '?'} {other} (as {e['relation']}; shown above)")
            continue
        run = info["run"]
        run_note = f"  (run {run})" if run and run != nodes.get(node, {}).get("run") else ""
        lines.append(f"{indent}{arrow} {info['kind'] or '?'} {other} (as {e['relation']}){run_note}")
        _tree(other, links, far, arrow, nodes, lines, seen, depth + 1)
