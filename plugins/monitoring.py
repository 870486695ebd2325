"""The monitor stage: compare a current window with a reference snapshot, column by column."""

from __future__ import annotations

from typing import ClassVar

import attrs

from tether import hookimpl
from tether.backends import Monitor
from tether.records import DriftResult, Finding, MonitorReport, new_id


@attrs.frozen(kw_only=True)
class DriftMonitor(Monitor):
    """KS test for numeric columns, chi-squared for categorical ones."""

    name: ClassVar[str] = "drift"
    columns: tuple[str, ...] = ()
    p_value: float = 0.05
    warn_share: float = 0.2  # share of drifted columns that makes the verdict "warning"
    critical_share: float = 0.5

    def compare(self, reference, current) -> list[DriftResult]:
        import numpy as np
        import pandas as pd
        from scipy import stats

        columns = self.columns or [c for c in reference.columns if c in current.columns]
        results = []
        for column in columns:
            ref, cur = reference[column].dropna(), current[column].dropna()
            if pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref):
                res = stats.ks_2samp(ref.to_numpy(float), cur.to_numpy(float))
                stat, p, test = float(res.statistic), float(res.pvalue), "ks"
            else:
                cats = sorted(set(ref.astype(str)) | set(cur.astype(str)))
                table = np.array([[int((ref.astype(str) == c).sum()) for c in cats],
                                  [int((cur.astype(str) == c).sum()) for c in cats]])
                table = table[:, table.sum(axis=0) > 0]
                chi2, p, _, _ = stats.chi2_contingency(table)
                stat, p, test = float(chi2), float(p), "chi2"
            results.append(DriftResult(column=column, test=test, test_version="1", statistic=stat, p_value=p,
                                       threshold=self.p_value, threshold_type="p_value", drifted=p < self.p_value,
                                       n_reference=len(ref), n_current=len(cur)))
        return results


@hookimpl(trylast=True)
def tether_monitor(reference, current, deployment, stage, context):
    monitor = context.backend(stage)
    ref = context.workspace.read_snapshot(reference)
    cur = context.workspace.read_snapshot(current)
    skip = {reference.time_column, *reference.key_columns}
    if not monitor.columns:
        monitor = attrs.evolve(monitor, columns=tuple(c for c in ref.columns if c in cur.columns and c not in skip))
    results = monitor.compare(ref, cur)
    share = sum(r.drifted for r in results) / len(results) if results else 0.0
    verdict = "critical" if share >= monitor.critical_share else "warning" if share >= monitor.warn_share else "ok"
    findings = tuple(
        Finding(check="drift", severity="warning", message=f"column '{r.column}' drifted ({r.test} p={r.p_value:.2g})",
                evidence={"column": r.column, "statistic": r.statistic, "p_value": r.p_value})
        for r in results if r.drifted
    )
    return MonitorReport(id=new_id("mon"), reference_id=reference.id, current_id=current.id, verdict=verdict,
                         results=tuple(results), findings=findings, details={"drifted_share": share})


@hookimpl
def tether_add_backends(backends):
    backends.add(DriftMonitor)
