"""The split stage: assign rows, fingerprint them, check for leakage, record a ``SplitManifest``."""

from __future__ import annotations

import hashlib
import json

import attrs
from tether.errors import DataError
from tether.plugins.rows import (
    FINGERPRINT_METHOD,
    LABELS,
    SPLITS,
    missing_column,
    row_fingerprints,
    summarize_split,
)
from tether.records import SplitManifest


def _manifest_id(ref_digest: str, strategy: str, params: dict, policy: dict) -> str:
    payload = json.dumps({"a": ref_digest, "s": strategy, "p": params, "policy": policy}, sort_keys=True, default=str)
    return "split-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def _assign(strategy, frame, context, where: str):
    """Run the strategy; its result must hold one known split name per row."""
    import numpy as np
    import pandas as pd

    labels = np.asarray(strategy.assign(frame, context=context), dtype=object)
    if len(labels) != len(frame):
        raise DataError(f"{where}: strategy '{strategy.name}' returned {len(labels)} labels for {len(frame)} rows")
    bad = set(pd.unique(labels)) - set(LABELS)
    if bad:
        raise DataError(
            f"{where}: strategy '{strategy.name}' returned split names {sorted(map(str, bad))}; "
            f"use {', '.join(LABELS)}"
        )
    return labels


def _declared_columns(strategy, frame, where: str) -> dict[str, str]:
    """``{role: column}`` of the strategy's entity, time and label columns, each in ``frame``
    (as are its ``ignore_columns``); a missing one is a DataError naming the parameter."""
    params = {"entity": "entity_column", "time": "time_column", "label": "label"}
    declared = {role: getattr(strategy, param) for role, param in params.items() if getattr(strategy, param)}
    for role, column in declared.items():
        if column not in frame.columns:
            raise missing_column(column, frame.columns, what=f"{where}.params.{params[role]}: column")
    for i, column in enumerate(strategy.ignore_columns):
        if column not in frame.columns:
            raise missing_column(column, frame.columns, what=f"{where}.params.ignore_columns[{i}]: column")
    return declared


def _leakage_findings(frame, labels, fingerprints, strategy, context, policy) -> list:
    """Run the leakage checks ``policy`` enables on the split, with the strategy's declarations."""
    from tether.plugins.leakage.input import LeakageInput, load_catalogue
    from tether.plugins.leakage.policy import run_checks

    features_from = strategy.features_from
    catalogue = load_catalogue(context.resolve_path(features_from)) if features_from else ()
    data = LeakageInput(frame=frame, splits=labels, fingerprints=fingerprints, entity_column=strategy.entity_column,
                        time_column=strategy.time_column, label=strategy.label, catalogue=catalogue,
                        ignore_columns=tuple(strategy.ignore_columns))
    return run_checks(data, policy, host=context.host if context is not None else None, where="policy.leakage")


def _assignment_frame(fingerprints, labels):
    """``row``, ``row_fingerprint``, ``split`` per row. The split names are converted from the
    object array (one shared string per split), not through a fixed-width ``<U10`` copy of
    every row (200 MB for 5 million rows); the column's dtype, and so the stored bytes, are
    those ``labels.astype(str)`` gave."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"row": np.arange(len(labels), dtype=np.int64), "row_fingerprint": fingerprints,
                         "split": pd.Series(labels, dtype=object, copy=False).astype(str)}, copy=False)


def make_split(frame, strategy, *, snapshot_id: str, context, where: str = "split"):
    """Assign, fingerprint, summarise and check ``frame``; returns (manifest, assignment ref).

    The manifest is not stored; its ``assignment`` object is, before the checks run, so that
    the assignment frame and its Parquet bytes are gone while they work on the frame.
    """
    import numpy as np

    declared = _declared_columns(strategy, frame, where)
    labels = _assign(strategy, frame, context, where)
    fingerprints = row_fingerprints(frame)
    ref = context.workspace.put_frame(_assignment_frame(fingerprints, labels))
    policy = (context.policy or {}).get("leakage", {}) if context is not None else {}
    findings = _leakage_findings(frame, labels, fingerprints, strategy, context, policy)
    del fingerprints
    summary = summarize_split(frame, labels, entity_column=strategy.entity_column,
                              time_column=strategy.time_column, label=strategy.label)
    params = json.loads(json.dumps(attrs.asdict(strategy), default=str))  # as the store gives it back
    manifest = SplitManifest(
        id=_manifest_id(ref.digest, strategy.name, params, policy), snapshot_id=snapshot_id, strategy=strategy.name,
        params=params, sizes={s: int(np.sum(labels == s)) for s in LABELS if s in SPLITS or np.any(labels == s)},
        assignment=ref, seed=strategy.seed, findings=tuple(findings), summary=summary,
        fingerprint_method=FINGERPRINT_METHOD, columns=declared,
        label_definition=strategy.label_definition or "", policy=policy,
    )
    return manifest, ref


def run_split_stage(snapshot, stage, context):
    """The built-in ``tether_split``: split the snapshot with the stage's strategy.

    When a check fails, the manifest is stored (linked to its snapshot) before
    :class:`~tether.plugins.leakage.policy.LeakageFailed` is raised, so
    ``tether splits show ID`` explains what failed; the run records the error.
    """
    from tether.plugins.leakage.policy import LeakageFailed

    from .report import write_html

    strategy = context.backend(stage)
    frame = context.workspace.read_snapshot(snapshot)
    manifest, _ = make_split(frame, strategy, snapshot_id=snapshot.id, context=context, where=stage.where)
    if strategy.html:
        write_html(manifest, context.resolve_path(strategy.html))
    failing = [f for f in manifest.findings if f.severity == "error"]
    if failing:
        context.store.put(manifest, parents=[(snapshot.id, "snapshot")],
                          run_id=context.run.id if context.run else None)
        raise LeakageFailed.from_findings(manifest.id, failing)
    return manifest
