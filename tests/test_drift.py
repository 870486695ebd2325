"""Drift tests: agreement with scipy, sketches, defaults, the shared result schema, bad input."""

from __future__ import annotations

import math
import warnings

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance
from tether.plugins.monitoring.compare import compare
from tether.plugins.monitoring.drift_tests import default_test, run_test
from tether.plugins.monitoring.profiles import profile_batches
from tether.plugins.monitoring.sketches import CategoricalSketch, NumericSketch


def sketch(values, **kw) -> NumericSketch:
    s = NumericSketch(**kw)
    s.add(np.asarray(values, dtype=float))
    return s


def cats(values) -> CategoricalSketch:
    s = CategoricalSketch()
    s.add_arrow(pa.array(list(values)))
    return s


def create(host, name, **params):
    return host.backends.create("drift", name, params)


@pytest.mark.parametrize("n1,n2,integers", [(300, 500, False), (4_000, 9_000, True), (30_000, 20_000, False),
                                            (25_000, 40_000, True)])
def test_ks_matches_scipy_statistic_and_p_value(host, n1, n2, integers):
    rng = np.random.default_rng(n1)
    a, b = rng.normal(0, 1, n1), rng.normal(0.04, 1.1, n2)
    if integers:  # many ties
        a, b = np.round(a * 3), np.round(b * 3)
    mine = create(host, "ks").run("x", sketch(a), sketch(b))
    ref = stats.ks_2samp(a, b)
    assert mine.statistic == pytest.approx(ref.statistic, rel=1e-12, abs=1e-15)
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert mine.method.startswith("ks_2samp " + ("exact" if max(n1, n2) <= 10_000 else "asymptotic"))


def test_chi2_matches_scipy_with_categories_on_one_side_only(host):
    rng = np.random.default_rng(1)
    x = rng.choice(list("abc"), 3_000, p=[0.5, 0.3, 0.2])
    y = np.concatenate([rng.choice(list("abc"), 2_000, p=[0.4, 0.4, 0.2]), ["d"] * 40])
    mine = create(host, "chi2").run("c", cats(x), cats(y))
    table = pd.crosstab(np.r_[np.zeros(x.size), np.ones(y.size)], np.r_[x, y]).to_numpy()
    ref = stats.chi2_contingency(table)
    assert mine.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert mine.details["dof"] == 3


def test_wasserstein_matches_scipy_and_is_normed_by_reference_std(host):
    rng = np.random.default_rng(2)
    a, b = rng.gamma(2, 3, 50_000), rng.gamma(2.2, 3, 30_000)
    mine = create(host, "wasserstein").run("x", sketch(a), sketch(b))
    w = stats.wasserstein_distance(a, b)
    assert mine.details["wasserstein"] == pytest.approx(w, rel=1e-9)
    assert mine.statistic == pytest.approx(w / np.std(a), rel=1e-9)
    assert mine.threshold_type == "distance" and mine.p_value is None


def test_jensenshannon_matches_scipy_on_categories_and_histograms(host):
    rng = np.random.default_rng(3)
    x, y = rng.choice(list("abcd"), 5_000), rng.choice(list("abce"), 4_000)
    mine = create(host, "jensenshannon").run("c", cats(x), cats(y))
    keys = sorted(set(x) | set(y))
    p = np.array([(x == k).sum() for k in keys]) / x.size
    q = np.array([(y == k).sum() for k in keys]) / y.size
    assert mine.statistic == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.3, 1, 20_000)
    mine = create(host, "jensenshannon").run("x", sketch(a), sketch(b))
    edges = np.histogram_bin_edges(np.r_[a, b], bins=30)
    hp, hq = np.histogram(a, edges)[0] / a.size, np.histogram(b, edges)[0] / b.size
    assert mine.statistic == pytest.approx(distance.jensenshannon(hp, hq), rel=1e-6)


def test_psi_matches_a_direct_numpy_computation(host):
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 40_000), rng.normal(0.2, 1.1, 40_000)
    mine = create(host, "psi").run("x", sketch(a), sketch(b))
    edges = np.quantile(a, np.arange(1, 10) / 10)
    ra = np.bincount(np.searchsorted(edges, a), minlength=10) / a.size
    rb = np.bincount(np.searchsorted(edges, b), minlength=10) / b.size
    assert mine.statistic == pytest.approx(float(np.sum((rb - ra) * np.log(rb / ra))), rel=1e-9)
    assert mine.drifted is (mine.statistic >= 0.2)


def test_anderson_darling_matches_scipy(host):
    rng = np.random.default_rng(5)
    a, b = np.round(rng.normal(0, 1, 3_000), 2), np.round(rng.normal(0.1, 1, 2_000), 2)
    mine = create(host, "anderson").run("x", sketch(a), sketch(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.anderson_ksamp([a, b])
    assert mine.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_zscore_reports_standard_deviations(host):
    a, b = np.r_[np.zeros(50), np.full(50, 2.0)], np.full(80, 1.5)  # mean 1, std 1
    res = create(host, "zscore").run("x", sketch(a), sketch(b))
    assert res.threshold_type == "std" and res.statistic == pytest.approx(0.5) and res.drifted


def test_every_test_reports_the_shared_schema(host):
    rng = np.random.default_rng(6)
    a, b = sketch(rng.normal(0, 1, 2_000)), sketch(rng.normal(1, 1, 2_000))
    for name in ("ks", "psi", "wasserstein", "jensenshannon", "anderson", "zscore"):
        res = run_test(create(host, name), "x", a, b)
        assert res.test == name and res.test_version and res.method
        assert res.threshold_type in ("p_value", "distance", "std")
        assert (res.p_value is None) == (res.threshold_type != "p_value")
        assert res.n_reference == 2_000 and res.n_current == 2_000
        assert math.isfinite(res.statistic) and res.drifted is True, name


def test_thresholds_are_params_and_type_errors_are_config_errors(host):
    from tether.errors import ConfigError

    assert create(host, "wasserstein", threshold=0.3).threshold == 0.3
    with pytest.raises(ConfigError, match="threshold"):
        create(host, "ks", threshold="high")
    with pytest.raises(ConfigError, match="needs a numeric column"):
        run_test(create(host, "ks"), "c", cats("ab"), cats("ba"))


def test_default_test_by_column_type_and_sample_size():
    assert default_test("numeric", 1_000, 50) == "ks"
    assert default_test("numeric", 1_001, 50) == "wasserstein"
    assert default_test("numeric", 50_000, 5) == "jensenshannon"  # low cardinality: categories
    assert default_test("numeric", 500, 3) == "chi2"
    assert default_test("categorical", 500, 30) == "chi2"
    assert default_test("categorical", 5_000, 30) == "jensenshannon"


@pytest.mark.parametrize("n,decimals", [(30_000, 3), (400_000, 1), (400_000, 9)])  # buffered, many ties, few
def test_sketch_from_chunks_equals_sketch_in_one_go(n, decimals):
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(0, 1, n), decimals)
    whole = sketch(x)
    parts = NumericSketch()
    for chunk in np.array_split(x, 13):
        parts.add(chunk)
    assert np.array_equal(whole.values, parts.values) and np.array_equal(whole.counts, parts.counts)
    assert parts.count == x.size and not parts.compressed and parts.rank_error == 0


def test_compressed_sketch_keeps_the_cdf_within_its_bound(host):
    rng = np.random.default_rng(8)
    x, y = rng.normal(0, 1, 60_000), rng.normal(0.05, 1, 60_000)
    small = NumericSketch(sketch_size=2_000)
    for chunk in np.array_split(x, 6):
        small.add(chunk)
    assert small.compressed and small.distinct <= 2_000 and small.count == 60_000
    assert small.values[0] == x.min() and small.values[-1] == x.max()
    grid = np.linspace(-3, 3, 101)
    exact = np.searchsorted(np.sort(x), grid, side="right") / x.size
    approx = small.cdf_at(grid) / small.count
    assert np.max(np.abs(exact - approx)) <= 6 * 2 / 2_000  # one compression error per chunk at most
    ks = create(host, "ks").run("x", small, sketch(y))
    assert ks.statistic == pytest.approx(stats.ks_2samp(x, y).statistic, abs=6 * 2 / 2_000)
    assert "sketch" in ks.method


@pytest.mark.parametrize("n", [200_000, 2_000_000])
@pytest.mark.parametrize("shift", [0.0, 0.003])
def test_ks_p_value_within_1e3_of_scipy_at_large_sizes_with_default_sketches(host, n, shift):
    """Default settings, data read in chunks as a window is: the KS p-value stays within
    1e-3 (absolute) of ``scipy.stats.ks_2samp`` on ordinary p-values, not only tiny ones."""
    rng = np.random.default_rng(n + int(shift * 1e4))
    a, b = rng.normal(10, 2, n), rng.normal(10 + shift * 2, 2, n)
    ref = profile_batches(pa.table({"x": a}).to_batches(max_chunksize=262_144))
    cur = profile_batches(pa.table({"x": b}).to_batches(max_chunksize=262_144))
    mine = create(host, "ks").run("x", ref.columns["x"], cur.columns["x"])
    expected = stats.ks_2samp(a, b)
    assert abs(mine.p_value - expected.pvalue) <= 1e-3, (mine.p_value, expected.pvalue)
    assert mine.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert "sketch" not in mine.method


def test_ks_on_a_compressed_sketch_states_its_error_bound(host):
    rng = np.random.default_rng(9)
    x, y = rng.normal(0, 1, 60_000), rng.normal(0.01, 1, 60_000)
    small = NumericSketch(sketch_size=2_000)
    for chunk in np.array_split(x, 6):
        small.add(chunk)
    ks = create(host, "ks").run("x", small, sketch(y))
    expected = stats.ks_2samp(x, y)
    bound_d, bound_p = ks.details["d_error_bound"], ks.details["p_value_error_bound"]
    assert abs(ks.statistic - expected.statistic) <= bound_d
    assert abs(ks.p_value - expected.pvalue) <= bound_p <= 1.0
    assert "sketch" in ks.method


def test_stored_profiles_reload_exact_and_old_compressed_ones_ask_for_a_re_profile(host, workspace):
    from tether.plugins.monitoring.profile_store import load_profile, save_profile

    rng = np.random.default_rng(10)
    a, b = rng.normal(0, 1, 40_000), rng.normal(0.01, 1, 40_000)
    cur = profile_batches([pa.table({"x": b})])
    exact = save_profile(workspace, profile_batches([pa.table({"x": a})]), name="exact")
    ks = create(host, "ks").run("x", load_profile(workspace, exact).columns["x"], cur.columns["x"])
    assert abs(ks.p_value - stats.ks_2samp(a, b).pvalue) < 1e-12 and "sketch" not in ks.method
    # a profile compressed with a small sketch, stored before the bound was kept (rank_error None)
    small = save_profile(workspace, profile_batches([pa.table({"x": a})], sketch_size=2_000), name="small",
                         sketch_size=2_000)
    old = attrs.evolve(small, columns=tuple(attrs.evolve(c, rank_error=None) for c in small.columns))
    ks = create(host, "ks").run("x", load_profile(workspace, old).columns["x"], cur.columns["x"])
    assert "re-profile the reference" in ks.method and ks.details["p_value_error_bound"] is None
    assert 0.0 <= ks.p_value <= 1.0


def frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def side(current):
        return pd.DataFrame({
            "stable_a": rng.normal(5, 2, n),
            "stable_b": rng.exponential(3, n),
            "stable_int": rng.poisson(4, n),
            "shifted": rng.normal(5 + (1.0 if current else 0.0), 2, n),
            "scaled": rng.normal(0, 2.0 if current else 1.0, n),
            "stable_cat": rng.choice(list("abcdef"), n),
            "moved_cat": rng.choice(list("abc"), n, p=[0.2, 0.3, 0.5] if current else [0.5, 0.3, 0.2]),
        })

    return side(False), side(True)


@pytest.mark.parametrize("n", [800, 20_000])  # p-value defaults, then distance defaults
def test_report_flags_exactly_the_drifted_columns(host, n):
    ref, cur = frames(n)
    r = profile_batches([pa.Table.from_pandas(ref)])
    c = profile_batches([pa.Table.from_pandas(cur)])
    results, findings = compare(r, c, backends=host.backends)
    assert {x.column for x in results if x.drifted} == {"shifted", "scaled", "moved_cat"}
    assert len(results) == 7 and not findings
    expected = {"ks", "chi2"} if n <= 1_000 else {"wasserstein", "jensenshannon"}
    assert {x.test for x in results} == expected


def test_per_column_override_and_wildcard(host):
    ref, cur = frames(3_000)
    r, c = (profile_batches([pa.Table.from_pandas(f)]) for f in (ref, cur))
    results, _ = compare(r, c, backends=host.backends, tests={"*": ["psi"], "shifted": ["ks", "zscore"]},
                         test_params={"psi": {"threshold": 0.5}})
    by = {(x.column, x.test): x for x in results}
    assert ("shifted", "ks") in by and ("shifted", "zscore") in by and ("shifted", "psi") not in by
    assert by[("stable_a", "psi")].threshold == 0.5


def test_domain_classifier_sees_a_change_that_marginals_hide(host):
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, 4_000)
    noise = rng.normal(0, 0.3, 4_000)
    ref = pd.DataFrame({"x": x, "y": x + noise})
    cur = pd.DataFrame({"x": x, "y": -x + noise})  # same marginals, opposite correlation
    r, c = (profile_batches([pa.Table.from_pandas(f)]) for f in (ref, cur))
    results, _ = compare(r, c, backends=host.backends, tests={"*": ["ks"]}, multivariate=("domain_classifier",))
    by = {x.test: x for x in results if x.column == "*" or x.test == "domain_classifier"}
    assert by["domain_classifier"].statistic > 0.9 and by["domain_classifier"].drifted
    assert not any(x.drifted for x in results if x.test == "ks")
    same, _ = compare(r, r, backends=host.backends, multivariate=("domain_classifier",))
    auc = next(x for x in same if x.test == "domain_classifier")
    assert auc.statistic < 0.55 and not auc.drifted


# --- bad input: a finding or a clear error, never a crash or NaN verdict -------------------


def _compare(host, ref: pd.DataFrame, cur: pd.DataFrame):
    from tether.plugins.monitoring.health import health
    from tether.plugins.monitoring.params import HealthParams

    r = profile_batches([pa.Table.from_pandas(ref, preserve_index=False)])
    c = profile_batches([pa.Table.from_pandas(cur, preserve_index=False)])
    results, findings = compare(r, c, backends=host.backends)
    hf, _ = health(r, c, HealthParams())
    for res in results:
        assert math.isfinite(res.statistic) and res.drifted in (True, False)
        assert res.p_value is None or math.isfinite(res.p_value)
    return results, findings + hf


def test_empty_current_window(host):
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": list("xyz")})
    results, findings = _compare(host, ref, ref.iloc[:0])
    assert results == [] and any(f.check == "volume.empty" and f.severity == "error" for f in findings)


def test_column_missing_from_current(host):
    ref = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0)})
    results, findings = _compare(host, ref, ref[["a"]])
    assert [r.column for r in results] == ["a"]
    assert any(f.check == "schema.removed" and "'b'" in f.message for f in findings)


def test_all_null_column(host):
    ref = pd.DataFrame({"a": np.arange(100.0), "n": np.arange(100.0)})
    cur = pd.DataFrame({"a": np.arange(100.0), "n": np.full(100, np.nan)})
    results, findings = _compare(host, ref, cur)
    assert [r.column for r in results] == ["a"]
    assert {f.check for f in findings} >= {"drift.no_values", "missing.all", "missing.change"}


def test_constant_columns(host):
    ref = pd.DataFrame({"k": np.full(2_000, 3.0), "s": ["x"] * 2_000})
    same, _ = _compare(host, ref, ref)
    assert len(same) == 2 and not any(r.drifted for r in same)
    moved, _ = _compare(host, ref, pd.DataFrame({"k": np.full(2_000, 4.0), "s": ["x"] * 2_000}))
    assert {r.column for r in moved if r.drifted} == {"k"}


def test_categories_only_on_one_side(host):
    ref = pd.DataFrame({"c": ["a", "b"] * 1_000})
    cur = pd.DataFrame({"c": ["c", "d"] * 1_000})
    results, findings = _compare(host, ref, cur)
    assert results[0].drifted and results[0].statistic == pytest.approx(math.sqrt(math.log(2)))
    assert any(f.check == "categories.unseen" for f in findings)


def test_mismatched_dtypes(host):
    ref = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100)})
    cur = pd.DataFrame({"a": [str(i) for i in range(100)], "b": np.arange(100.0)})
    results, findings = _compare(host, ref, cur)
    assert [r.column for r in results] == ["b"]  # int64 -> double is still numeric
    retyped = {f.evidence["column"]: f.severity for f in findings if f.check == "schema.retyped"}
    assert retyped == {"a": "error", "b": "warning"}


def test_identifier_columns_are_not_tested_and_storage_types_are_not_retyping(host):
    ref = pd.DataFrame({"id": [f"c{i}" for i in range(500)], "kind": ["a", "b"] * 250})
    cur = pd.DataFrame({"id": [f"d{i}" for i in range(300)], "kind": ["a", "b", "b"] * 100})
    r = profile_batches([pa.Table.from_pandas(ref)])
    c = profile_batches([pa.Table.from_pandas(cur).cast(pa.schema([("id", pa.large_string()),
                                                                   ("kind", pa.dictionary(pa.int8(), pa.string()))]))])
    results, findings = compare(r, c, backends=host.backends)
    assert [x.column for x in results] == ["kind"]
    assert [f.check for f in findings] == ["drift.identifier"] and findings[0].severity == "info"
    from tether.plugins.monitoring.health import health
    from tether.plugins.monitoring.params import HealthParams

    hf, _ = health(r, c, HealthParams(volume_change=1.0))
    assert [f.check for f in hf] == []  # no retyping, no unseen-category flood for the id column
    forced, _ = compare(r, c, backends=host.backends, tests={"id": ["chi2"]})
    assert {x.column for x in forced} == {"id", "kind"}


def test_an_empty_csv_column_is_missing_not_retyped(host, tmp_path):
    from tether.plugins.monitoring.health import health
    from tether.plugins.monitoring.params import HealthParams
    from tether.plugins.monitoring.windows import file_batches

    pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200.0)}).to_csv(tmp_path / "ref.csv", index=False)
    (tmp_path / "cur.csv").write_text("a,b\n" + "".join(f"{i}.0,\n" for i in range(200)))
    r = profile_batches(file_batches(tmp_path / "ref.csv"))
    c = profile_batches(file_batches(tmp_path / "cur.csv"))
    assert c.types["b"] == "null"
    results, findings = compare(r, c, backends=host.backends)
    hf, _ = health(r, c, HealthParams())
    assert [x.column for x in results] == ["a"]
    checks = {f.check for f in findings + hf}
    assert {"drift.no_values", "missing.all"} <= checks and "schema.retyped" not in checks


@pytest.mark.parametrize("name,params,message", [
    ("ks", {"threshold": 0}, "threshold: a p-value threshold must be in (0, 1), got 0"),
    ("chi2", {"threshold": 1.0}, "threshold: a p-value threshold must be in (0, 1), got 1"),
    ("anderson", {"threshold": -0.1}, "threshold: a p-value threshold must be in (0, 1)"),
    ("wasserstein", {"threshold": -1}, "threshold: must be above 0, got -1"),
    ("psi", {"bins": 1}, "bins: must be at least 2, got 1"),
    ("psi", {"eps": 0}, "eps: must be above 0"),
    ("jensenshannon", {"bins": 0}, "bins: must be at least 1, got 0"),
    ("wasserstein", {"min_std": 0}, "min_std: must be above 0"),
    ("anderson", {"max_sample": 1}, "max_sample: must be at least 2"),
    ("domain_classifier", {"cv": 1}, "cv: must be at least 2"),
    ("domain_classifier", {"sample_rows": 0}, "sample_rows: must be at least 2"),
    ("domain_classifier", {"threshold": 1.5}, "threshold: must be in (0, 1]"),
])
def test_out_of_range_test_params_are_config_errors_naming_the_key(host, name, params, message):
    from tether.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        host.backends.create("drift", name, params, where="stages[2].params.drift.test_params." + name)
    assert f"stages[2].params.drift.test_params.{name}.params.{message}" in str(err.value)


def test_a_stored_compressed_profile_keeps_its_ks_error_bound(workspace):
    import numpy as np
    import pyarrow as pa
    from tether.plugins.monitoring.profile_store import load_profile, save_profile
    from tether.plugins.monitoring.profiles import profile_batches

    rng = np.random.default_rng(3)
    batch = pa.record_batch({"x": rng.normal(size=50_000)})
    profile = profile_batches([batch], sketch_size=1_000)
    assert profile.columns["x"].compressed and profile.columns["x"].rank_error is not None
    rec = save_profile(workspace, profile, name="ref", sketch_size=1_000)
    loaded = load_profile(workspace, rec).columns["x"]
    assert loaded.compressed and loaded.rank_error == profile.columns["x"].rank_error
