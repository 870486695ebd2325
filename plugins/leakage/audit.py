"""Auditing a split made elsewhere: read a data file whose split is a column, and check it
(:func:`audit_frame`), or check a Parquet file or folder on an execution engine without
loading it whole (:func:`audit_on_engine`)."""

from __future__ import annotations

from tether.errors import DataError
from tether.plugins.rows import missing_column, normalize_labels, parse_times, summarize_split
from tether.workspace import table_to_frame

from .input import LeakageInput
from .policy import run_checks


def read_data_file(path: str):
    """A CSV or Parquet file (or folder of Parquet files) as a DataFrame, read by the shared
    reader (:func:`tether.plugins.tables.read_file_table`) and converted a column at a time."""
    import pyarrow as pa
    from tether.plugins.tables import read_file_table

    tables = [read_file_table(path)]  # the list is the only reference: see table_to_frame
    pa.default_memory_pool().release_unused()  # the reader's decoding buffers
    return table_to_frame(tables)


def _check_columns(columns, roles: dict[str, str | None], ignore_columns=()) -> None:
    columns = list(columns)
    for role, col in roles.items():
        if col and col not in columns:
            raise missing_column(col, columns, what=f"leakage: {role} column")
    for col in ignore_columns:
        if col not in columns:
            raise missing_column(col, columns, what="leakage: ignored column")


def audit_frame(frame, *, split_column: str, entity_column=None, time_column=None, label=None, catalogue=(),
                ignore_columns=(), policy=None, host=None):
    """Run the leakage checks on a frame whose split is a column; returns (findings, summary)."""
    _check_columns(frame.columns, {"split": split_column, "entity": entity_column, "time": time_column,
                                   "label": label}, ignore_columns)
    if not len(frame):
        raise DataError("leakage: the data holds no rows; there is nothing to check")
    splits = normalize_labels(frame[split_column], where="leakage", column=split_column)
    if not any((splits == name).any() for name in ("train", "validation", "test")):
        raise DataError(f"leakage: no rows are in train, validation or test ({len(splits)} excluded); "
                        f"there is nothing to check")
    data_frame = frame.drop(columns=[split_column])
    if entity_column and data_frame[entity_column].isna().any():
        raise DataError(f"leakage: entity column '{entity_column}' has {int(data_frame[entity_column].isna().sum())} "
                        f"null values; fill or drop them")
    if time_column:
        parse_times(data_frame[time_column], time_column, where="leakage")
    data = LeakageInput(frame=data_frame, splits=splits, entity_column=entity_column, time_column=time_column,
                        label=label, catalogue=tuple(catalogue), ignore_columns=tuple(ignore_columns))
    findings = run_checks(data, policy, host=host)
    summary = summarize_split(data_frame, splits, entity_column=entity_column, time_column=time_column, label=label)
    return findings, summary


#: the checks with a partitioned version (each an ``Engine`` operation of the same name)
PARTITIONED = ("exact_duplicates", "near_duplicates", "entity_overlap")
#: what a built-in check without a partitioned version needs to apply (any other check applies)
NEEDS = {"temporal_order": ("time_column",), "feature_availability": ("time_column", "catalogue"),
         "target_leakage": ("label",), "missingness_leakage": ("label",), "label_shift": ("label",)}
_NEAR_OPTIONS = ("tolerance", "atol", "coarse", "max_expand", "max_pairs")


def audit_on_engine(path, engine, *, split_column: str, entity_column=None, time_column=None, label=None,
                    catalogue=(), ignore_columns=(), policy=None, host=None):
    """Run the leakage checks on the Parquet file or folder ``path`` on ``engine``, without
    loading it whole; returns ``(findings, summary)`` as :func:`audit_frame` does.

    ``exact_duplicates``, ``near_duplicates`` and ``entity_overlap`` run as engine
    operations; any other check the policy enables that applies to the given columns has no
    partitioned version and is an error before anything runs. The summary (rows per split,
    the time range with ``time_column``, entities per split when ``entity_overlap`` ran)
    comes from a pass over the split, entity and time columns only.
    """
    from pathlib import Path

    import attrs
    from tether.errors import ConfigError
    from tether.plugins.engines.partitions import is_parquet, plan

    from .policy import SEVERITY, configured_checks

    if not is_parquet(Path(path)):
        raise DataError(f"leakage: --engine reads a Parquet file or folder, not '{path}': convert it to Parquet, "
                        f"or run without --engine")
    layout = plan(path)
    _check_columns(layout.schema.names, {"split": split_column, "entity": entity_column, "time": time_column,
                                         "label": label}, ignore_columns)
    given = {"time_column": time_column, "label": label, "catalogue": catalogue}
    runs, local_only = [], []
    for action, check in configured_checks(policy, host=host):
        if check.name == "entity_overlap" and not entity_column:
            continue
        if check.name in PARTITIONED:
            if not engine.supports(check.name):
                raise ConfigError(f"leakage: engine '{engine.name}' does not run {check.name}; turn it off in "
                                  f"--policy ({check.name}: off) or run without --engine")
            runs.append((action, check))
        elif all(given[need] for need in NEEDS.get(check.name, ())):
            local_only.append(check.name)
    if local_only:
        names = ", ".join(local_only)
        verb = "has" if len(local_only) == 1 else "have"
        raise ConfigError(f"leakage: {names} {verb} no partitioned version to run on an engine; turn "
                          f"{'it' if len(local_only) == 1 else 'them'} off in --policy ({local_only[0]}: off) "
                          f"or run without --engine")
    summary = _engine_summary(layout, split_column=split_column, entity_column=entity_column,
                              time_column=time_column)
    findings = []
    for action, check in runs:
        if check.name == "exact_duplicates":
            found = engine.exact_duplicates(path, split_column=split_column, ignore_columns=tuple(ignore_columns))
        elif check.name == "near_duplicates":
            found = engine.near_duplicates(path, split_column=split_column, ignore_columns=tuple(ignore_columns),
                                           **{name: getattr(check, name) for name in _NEAR_OPTIONS})
        else:
            found = engine.entity_overlap(path, split_column=split_column, entity_column=entity_column,
                                          sample=check.sample)
            if found.entities_by_split is not None:
                summary["entities"] = {s: found.entities_by_split.get(s, 0) for s in summary["rows"]}
        findings.extend(attrs.evolve(f, severity=SEVERITY[action]) for f in check.findings(found))
    return findings, summary


def _engine_summary(layout, *, split_column: str, entity_column=None, time_column=None):
    """The summary's rows per split and time range, from one pass over the split, entity and time columns; the errors of
    :func:`audit_frame` for empty data, empty or unknown split names, missing entities and
    unparseable times, naming rows of the whole dataset."""
    import numpy as np
    from tether.plugins.engines.leakage_work import split_codes
    from tether.plugins.engines.partitions import read_table
    from tether.plugins.rows import LABELS

    from .input import SPLIT_CODES

    columns = list(dict.fromkeys(c for c in (split_column, entity_column, time_column) if c))
    counts = np.zeros(4, dtype=np.int64)  # excluded, train, validation, test
    nulls, offset, ranges = 0, 0, {}
    for part in layout.partitions:
        table = read_table(part, layout.schema, columns=columns)
        values = table.column(split_column).to_pandas()
        codes = split_codes(values, column=split_column, offset=offset)
        counts += np.bincount(codes.astype(np.int64) + 1, minlength=4)
        if entity_column:
            nulls += table.column(entity_column).null_count
        if time_column:
            times = _times(table.column(time_column).to_pandas(), time_column, offset)
            for code in np.unique(codes):
                at = times[codes == code]
                low, high = ranges.get(int(code), (at.min(), at.max()))
                ranges[int(code)] = (min(low, at.min()), max(high, at.max()))
        offset += table.num_rows
    if not offset:
        raise DataError("leakage: the data holds no rows; there is nothing to check")
    if not counts[1:].any():
        raise DataError(f"leakage: no rows are in train, validation or test ({int(counts[0])} excluded); "
                        f"there is nothing to check")
    if nulls:
        raise DataError(f"leakage: entity column '{entity_column}' has {nulls} null values; fill or drop them")
    code_of = {**SPLIT_CODES, "excluded": -1}
    present = [name for name in LABELS if counts[code_of[name] + 1]]
    summary = {"rows": {name: int(counts[code_of[name] + 1]) for name in present}}
    if time_column:
        summary["time_range"] = {name: [t.isoformat() for t in ranges[code_of[name]]] for name in present}
    return summary


def _times(values, column: str, offset: int):
    """``parse_times`` of one partition's time column; an error names the row in the whole dataset."""
    import re

    from tether.plugins.rows import parse_times

    try:
        return parse_times(values, column, where="leakage")
    except DataError as exc:
        raise DataError(re.sub(r"at row (\d+)", lambda m: f"at row {int(m.group(1)) + offset}", str(exc))) from None
