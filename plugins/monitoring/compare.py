"""Drift comparison of two profiles: each column's tests, and the multivariate ones.

Columns missing on one side, retyped between numeric and categorical, without values, or
looking like identifiers give findings instead of results.
"""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigError
from tether.records import DriftResult, Finding

from .drift_tests import default_test, run_test
from .sketches import NUMERIC, looks_like_identifier


class _Tests:
    """The drift test backends of one comparison, created once per name."""

    def __init__(self, backends, test_params: dict[str, dict]) -> None:
        self.backends, self.test_params = backends, test_params
        self.instances: dict[str, Any] = {}

    def __call__(self, name: str):
        if name not in self.instances:
            self.instances[name] = self.backends.create("drift", name, self.test_params.get(name),
                                                        where=f"drift.test_params.{name}")
        return self.instances[name]


def compare(reference, current, *, backends, tests: dict[str, list[str]] | None = None,
            test_params: dict[str, dict] | None = None, multivariate: tuple[str, ...] = (),
            columns: tuple[str, ...] = (), workers: int = 1) -> tuple[list[DriftResult], list[Finding]]:
    """Run each column's tests (configured in ``tests`` or :func:`default_test`)."""
    tests = tests or {}
    unknown = [c for c in tests if c != "*" and c not in reference.columns and c not in current.columns]
    if unknown:
        raise ConfigError(f"tests: column '{unknown[0]}' is in neither the reference nor the current window")
    test = _Tests(backends, test_params or {})
    names = list(columns) if columns else [c for c in reference.columns if c in current.columns]
    findings: list[Finding] = []
    jobs = []
    for col in names:
        ref, cur = reference.columns.get(col), current.columns.get(col)
        if ref is None or cur is None:
            continue  # reported by the schema check
        skipped = _not_tested(col, reference, current, tests)
        if skipped is not None:
            findings.extend(skipped)
            continue
        jobs.extend((test(name), col, ref, cur) for name in _tests_of(col, ref, cur, tests, test))
    results = _run_jobs(jobs, workers)
    for name in multivariate:
        result = _run_multivariate(test(name), name, reference, current, names)
        if isinstance(result, Finding):
            findings.append(result)
        else:
            results.append(result)
    return results, findings


def _not_tested(col: str, reference, current, tests) -> list[Finding] | None:
    """Findings for a column that is not tested (``[]`` when silently skipped), else ``None``."""
    ref, cur = reference.columns[col], current.columns[col]
    side = "reference" if ref.count == 0 else "current window" if cur.count == 0 else None
    if side:
        if not current.rows:
            return []
        return [Finding(check="drift.no_values", severity="warning",
                        message=f"column '{col}' has no non-missing values in the {side}; not tested",
                        evidence={"column": col})]
    if ref.kind != cur.kind:
        return [Finding(check="schema.retyped", severity="error",
                        message=f"column '{col}' is {reference.types.get(col)} in the reference but "
                                f"{current.types.get(col)} in the current window; not tested for drift",
                        evidence={"column": col, "reference": reference.types.get(col),
                                  "current": current.types.get(col)},
                        fix="cast it back to the reference type upstream, or rebuild the reference profile")]
    if col not in tests and looks_like_identifier(ref):
        return [Finding(check="drift.identifier", severity="info",
                        message=f"column '{col}' looks like an identifier ({ref.distinct} distinct values "
                                f"in {ref.count} rows); not tested for drift",
                        evidence={"column": col},
                        fix=f"exclude it, or set tests: {{{col}: [...]}} to test it anyway")]
    return None


def _tests_of(col: str, ref, cur, tests, test) -> list[str]:
    chosen = tests.get(col) or tests.get("*") or [default_test(ref.kind, ref.count, max(ref.distinct, cur.distinct))]
    for name in chosen:
        t = test(name)
        if t.multivariate:
            raise ConfigError(f"tests.{col}: '{name}' is multivariate; list it under 'multivariate'")
        if t.applies_to == NUMERIC and ref.kind != NUMERIC:
            raise ConfigError(f"tests.{col}: '{name}' needs a numeric column; '{col}' is categorical")
    return chosen


def _run_jobs(jobs, workers: int) -> list[DriftResult]:
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda job: run_test(*job), jobs))
    return [run_test(t, col, ref, cur) for t, col, ref, cur in jobs]


def _run_multivariate(t, name: str, reference, current, names: list[str]) -> DriftResult | Finding:
    if not t.multivariate:
        raise ConfigError(f"multivariate: '{name}' is a per-column test; list it under 'tests'")
    samples = (reference.sample, current.sample)
    if any(s is None or not s.num_rows for s in samples):
        return Finding(check="drift.no_sample", severity="warning",
                       message=f"{name}: no row sample on one side; not run")
    shared = [c for c in names if c in reference.sample.column_names and c in current.sample.column_names
              and c in reference.columns and c in current.columns
              and reference.columns[c].kind == current.columns[c].kind]
    return t.run_frames(reference.sample.to_pandas(), current.sample.to_pandas(), shared)
