"""Evaluation without a chain: tether.evaluate on known answers (beats the dummy, a bad
segment), metrics against scikit-learn, bootstrap intervals against a plain row
bootstrap, thresholds, baselines, error examples, ranking metrics and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tether
from tether import serde
from tether.errors import ConfigError, DataError
from tether.plugins.evaluation import bootstrap, metrics
from tether.plugins.evaluation.inputs import classification
from tether.plugins.evaluation.ranking import hit_rate_at_k, mrr, ndcg_at_k, ranking_metrics


def churn_like(n=6000, seed=0, bad_region="south"):
    """Scores that track the label everywhere except in one region, where they are noise."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west"], n)
    signal = rng.normal(size=n)
    y = (signal + rng.normal(scale=0.7, size=n) > 0).astype(int)
    score = 1 / (1 + np.exp(-2.5 * signal))
    bad = region == bad_region
    score[bad] = rng.uniform(size=bad.sum())
    frame = pd.DataFrame({"region": region, "tenure": rng.integers(0, 72, n),
                          "customer_id": [f"C{i:05d}" for i in range(n)]})
    return y, score, frame


# --- known answers ----------------------------------------------------------------------------


def test_a_model_no_better_than_the_dummy_fails_beats_dummy():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    noise = rng.uniform(size=4000)  # scores unrelated to the label
    ev = tether.evaluate(y, noise, beats={"dummy": 0.05}, resamples=200)
    (outcome,) = ev.outcomes
    assert not ev.passed and not outcome.passed
    assert outcome.rule == "beats.dummy" and outcome.metric == "roc_auc"
    assert "does not beat dummy 0.5000 by 0.05" in outcome.message
    assert [f.check for f in ev.findings if f.severity == "error"] == ["gate.beats"]
    good = tether.evaluate(y, np.clip(y * 0.6 + noise * 0.4, 0, 1), beats={"dummy": 0.05}, resamples=200)
    assert good.passed and good.metrics["roc_auc"] > 0.9


def test_a_model_good_on_average_and_bad_on_one_segment_fails_the_slice_gate_naming_it():
    y, score, frame = churn_like()
    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], min={"roc_auc": 0.75},
                         slice_gates=[{"slice": "region", "metric": "roc_auc", "min": 0.7}], resamples=300)
    assert ev.metrics["roc_auc"] > 0.8  # good on average
    failed = [o for o in ev.outcomes if not o.passed]
    assert [o.segment for o in failed] == ["region=south"]
    assert failed[0].message.startswith("region=south: roc_auc 0.")
    assert "below the minimum 0.7" in failed[0].message
    passed_segments = {o.segment for o in ev.outcomes if o.passed and o.rule == "slice_gates[0]"}
    assert passed_segments == {"region=north", "region=east", "region=west"}
    south = next(s for s in ev.slices if s.segment == "south")
    low, high = south.intervals["roc_auc"]
    assert low <= south.metrics["roc_auc"] <= high < 0.7  # the whole interval is below the gate
    assert any(f.check == "gate.slice" and "region=south" in f.message for f in ev.findings)


def test_every_failed_rule_is_named():
    y, score, frame = churn_like()
    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], min={"roc_auc": 0.99},
                         max={"log_loss": 0.1}, beats={"dummy": 0.6},
                         slice_gates=[{"slice": "region", "metric": "recall", "min": 0.99}], resamples=50)
    failed = {o.rule for o in ev.outcomes if not o.passed}
    assert failed == {"min.roc_auc", "max.log_loss", "beats.dummy", "slice_gates[0]"}
    assert len([f for f in ev.findings if f.severity == "error"]) == len([o for o in ev.outcomes if not o.passed])


# --- metrics and tables ---------------------------------------------------------------------


def test_binary_metrics_are_scikit_learns_and_the_counted_ones_agree():
    from sklearn import metrics as m

    y, score, _ = churn_like(n=3000, seed=5)
    p = classification("binary", y, scores=score, threshold=0.4)
    values = metrics.compute(p, counted=False)
    pred = (score >= 0.4).astype(int)
    assert values["roc_auc"] == pytest.approx(m.roc_auc_score(y, score))
    assert values["f1"] == pytest.approx(m.f1_score(y, pred))
    assert values["positive_rate"] == pytest.approx(pred.mean())
    counted = metrics.compute(p, counted=True)
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "positive_rate"):
        assert counted[name] == pytest.approx(values[name]), name


def test_multiclass_metrics_per_class_table_and_confusion_matrix():
    from sklearn import metrics as m

    rng = np.random.default_rng(2)
    names = np.array(["setosa", "versicolor", "virginica"])
    y = names[rng.integers(0, 3, 600)]
    proba = rng.dirichlet([1, 1, 1], 600)
    proba[np.arange(600), pd.Categorical(y, categories=names).codes] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    ev = tether.evaluate(y, proba, classes=list(names), resamples=100)
    pred = names[proba.argmax(axis=1)]
    assert ev.task == "multiclass" and ev.classes == tuple(names)
    assert ev.metrics["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert metrics.compute(classification("multiclass", y, scores=proba, classes=list(names)),
                           counted=False)["f1_macro"] == pytest.approx(ev.metrics["f1_macro"])
    assert ev.metrics["roc_auc"] == pytest.approx(m.roc_auc_score(y, proba, multi_class="ovr", labels=names))
    assert ev.confusion["matrix"] == m.confusion_matrix(y, pred, labels=names).tolist()
    assert [row["class"] for row in ev.per_class] == list(names)
    assert sum(row["support"] for row in ev.per_class) == 600
    p = classification("multiclass", y, scores=proba, classes=list(names))
    counted = metrics.compute(p, counted=True)
    for name in ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_weighted", "balanced_accuracy"):
        assert counted[name] == pytest.approx(ev.metrics[name]), name
    assert "positive_rate" not in ev.metrics and ev.calibration["of"] == "top class"


def test_regression_has_errors_and_residuals_but_no_positive_rate():
    rng = np.random.default_rng(4)
    y = rng.normal(150, 50, 500)
    pred = y + rng.normal(5, 20, 500)
    ev = tether.evaluate(y, pred, task="regression", max={"mae": 30}, beats={"dummy": 0.3}, resamples=100)
    assert ev.task == "regression" and ev.passed
    assert set(ev.metrics) == {"mae", "rmse", "r2", "mape", "median_ae", "rows"}
    assert "positive_rate" not in ev.metrics and not ev.sweep and not ev.curves
    assert ev.residuals["bias"] == pytest.approx(float(np.mean(pred - y)))
    assert ev.residuals["quantiles"]["0.5"] == pytest.approx(float(np.median(pred - y)))
    assert ev.baselines[0].reference == "mean" and ev.baselines[0].metrics["r2"] <= 0


def test_the_task_is_detected_from_the_label_and_outputs():
    assert tether.evaluate([0, 1, 1, 0], [0.2, 0.7, 0.9, 0.4], resamples=10).task == "binary"
    assert tether.evaluate(["a", "b", "c", "a"], ["a", "b", "b", "a"], resamples=10).task == "multiclass"
    assert tether.evaluate([1.5, 2.25, 3.0, 4.75], [1.4, 2.0, 3.3, 4.0], resamples=10).task == "regression"


# --- thresholds, curves, calibration ----------------------------------------------------------


def test_a_chosen_threshold_maximises_f1_and_is_recorded():
    y, score, _ = churn_like(n=3000, seed=8)
    ev = tether.evaluate(y, score, choose_threshold="f1", resamples=20)
    assert ev.threshold["method"] == "maximize" and ev.threshold["metric"] == "f1"
    best = max(row.get("f1", 0) for row in ev.sweep)
    assert ev.metrics["f1"] >= best - 1e-9  # at least as good as every point of the sweep
    assert any(f.check == "threshold" for f in ev.findings)  # chosen on the rows it is judged on
    fixed = tether.evaluate(y, score, threshold=0.9, resamples=20)
    assert fixed.threshold == {"value": 0.9, "method": "fixed"}
    assert fixed.metrics["positive_rate"] == pytest.approx(float((score >= 0.9).mean()))


def test_the_sweep_curves_and_calibration_are_consistent():
    y, score, _ = churn_like(n=2000, seed=9)
    ev = tether.evaluate(y, score, resamples=20)
    rates = [row["positive_rate"] for row in ev.sweep]
    assert len(ev.sweep) == 101 and rates == sorted(rates, reverse=True) and rates[0] == 1.0
    roc = ev.curves["roc"]
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and len(roc["fpr"]) <= metrics.CURVE_POINTS
    assert sum(ev.calibration["count"]) == 2000
    assert ev.calibration["brier"] == pytest.approx(ev.metrics["brier"])


# --- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_intervals_match_a_plain_row_bootstrap():
    """The multinomial cell draws give the same intervals as resampling rows with sklearn."""
    from sklearn import metrics as m

    rng = np.random.default_rng(11)
    n = 3000
    y = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    p = classification("binary", y, scores=score)
    points = metrics.compute(p)
    got, methods = bootstrap.intervals(bootstrap.plan(p), None, resamples=2000, confidence=0.9,
                                       rng=np.random.default_rng(0), points=points)
    pred = (score >= 0.5).astype(int)
    draws = np.random.default_rng(1).integers(0, n, size=(400, n))
    plain = {"roc_auc": [m.roc_auc_score(y[i], score[i]) for i in draws],
             "recall": [m.recall_score(y[i], pred[i]) for i in draws],
             "brier": [m.brier_score_loss(y[i], score[i]) for i in draws]}
    for name, values in plain.items():
        low, high = np.quantile(values, [0.05, 0.95])
        width = high - low
        assert got[name][0] == pytest.approx(low, abs=0.15 * width), name
        assert got[name][1] == pytest.approx(high, abs=0.15 * width), name
    assert methods["recall"] == "exact" and methods["roc_auc"].startswith("binned")


def test_binned_mean_intervals_keep_the_variance_of_heavy_tails():
    """Squared errors with a t(3) tail: the binned draws must not lose the top bin's spread."""
    rng = np.random.default_rng(21)
    n = 40000
    y = rng.normal(100, 30, n)
    pred = y + rng.standard_t(3, n) * 10
    ev = tether.evaluate(y, pred, task="regression", resamples=1000)
    assert ev.bootstrap["method"]["rmse"].startswith("binned")
    squared = (pred - y) ** 2
    draws = np.random.default_rng(2).integers(0, n, size=(300, n))
    low, high = np.quantile(np.sqrt(squared[draws].mean(axis=1)), [0.025, 0.975])
    got_low, got_high = ev.intervals["rmse"]
    assert got_high - got_low == pytest.approx(high - low, rel=0.2)
    assert got_low == pytest.approx(low, abs=0.2 * (high - low))


def test_intervals_are_seeded_and_small_segments_are_exact():
    y, score, frame = churn_like(n=1500, seed=12)
    one = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], seed=5, resamples=200)
    two = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], seed=5, resamples=200)
    other = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], seed=6, resamples=200)
    assert [s.intervals for s in one.slices] == [s.intervals for s in two.slices]
    assert [s.intervals for s in one.slices] != [s.intervals for s in other.slices]
    assert set(one.bootstrap["method"].values()) == {"exact"}  # 1,500 rows: every segment exact


def test_low_support_segments_are_flagged_and_not_gated():
    y, score, frame = churn_like(n=2000, seed=13)
    frame.loc[:9, "region"] = "islands"
    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], min_support=50,
                         slice_gates=[{"slice": "region", "metric": "accuracy", "min": 0.99}], resamples=50)
    islands = next(s for s in ev.slices if s.segment == "islands")
    assert islands.low_support and islands.support == 10
    outcome = next(o for o in ev.outcomes if o.segment == "region=islands")
    assert outcome.passed and "below min_support 50; not gated" in outcome.message
    assert any(f.check == "slice.support" and "islands" in f.message for f in ev.findings)


def test_numeric_bins_predicates_and_other_segments():
    y, score, frame = churn_like(n=2000, seed=14)
    ev = tether.evaluate(y, score, data=frame, resamples=20,
                         slices=[{"column": "tenure", "bins": [0, 12, 36, 72]},
                                 {"column": "region", "top": 2},
                                 {"where": "tests.test_evaluation:long_tenure", "name": "loyal"}])
    tenure = [s for s in ev.slices if s.slice == "tenure"]
    assert [s.segment for s in tenure] == ["[0, 12)", "[12, 36)", "[36, 72)"]
    assert sum(s.support for s in tenure) == 2000
    region = [s.segment for s in ev.slices if s.slice == "region"]
    assert len(region) == 3 and region[-1] == "(other)"
    loyal = next(s for s in ev.slices if s.slice == "loyal")
    assert loyal.kind == "predicate" and loyal.support == int((frame["tenure"] >= 48).sum())


def long_tenure(frame):
    return frame["tenure"] >= 48


def tenure_rule(frame):
    return (frame["tenure"] < 24).astype(int)


# --- baselines and error examples -------------------------------------------------------------


def test_a_user_rule_is_scored_on_the_same_rows():
    from sklearn import metrics as m

    y, score, frame = churn_like(n=2000, seed=15)
    ev = tether.evaluate(y, score, data=frame, resamples=20,
                         baselines={"rule": {"rule": "tests.test_evaluation:tenure_rule"}},
                         beats={"rule": {"metric": "accuracy", "margin": 0.0}})
    rule = next(b for b in ev.baselines if b.name == "rule")
    assert rule.kind == "rule" and rule.reference == "tests.test_evaluation:tenure_rule"
    assert rule.metrics["accuracy"] == pytest.approx(m.accuracy_score(y, tenure_rule(frame)))
    assert ev.outcomes[0].rule == "beats.rule" and ev.outcomes[0].passed


def test_error_examples_are_the_highest_loss_rows_with_their_ids():
    y, score, frame = churn_like(n=1000, seed=16)
    ev = tether.evaluate(y, score, ids=frame["customer_id"], id_column="customer_id", examples=5, resamples=10)
    worst = ev.examples["highest_loss"]
    loss = -(y * np.log(np.clip(score, 1e-15, 1)) + (1 - y) * np.log(np.clip(1 - score, 1e-15, 1)))
    assert [w["row"] for w in worst] == list(np.argsort(-loss, kind="stable")[:5])
    assert worst[0]["id"] == frame["customer_id"][worst[0]["row"]]
    assert all(c["label"] == c["prediction"] for c in ev.examples["correct"])
    assert ev.examples["id_column"] == "customer_id" and ev.examples["loss"] == "log_loss"


def test_the_record_round_trips_and_old_evaluations_still_load():
    y, score, frame = churn_like(n=800, seed=17)
    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], resamples=20)
    again = serde.from_dict(serde.to_dict(ev))
    assert again == ev
    old = {"kind": "evaluation", "schema_version": 1,
           "data": {"id": "eval-1", "model_id": "model-1", "feature_set_id": "feat-1", "split": "test",
                    "evaluator": "classification", "metrics": {"roc_auc": 0.8}, "passed": True,
                    "baseline_id": None, "baseline_metrics": {}, "findings": [],
                    "created_at": "2026-01-01T00:00:00+00:00", "gates": {"roc_auc": {"min": 0.7}}}}
    loaded = serde.from_dict(old)
    assert loaded.task == "" and loaded.slices == () and loaded.metrics == {"roc_auc": 0.8}


# --- ranking ----------------------------------------------------------------------------------


def test_ranking_metrics_have_known_values():
    relevant = [{"d1"}, {"d7", "d9"}, {"x"}, set()]
    retrieved = [["d3", "d1"], ["d9", "d2"], ["a", "b", "c"], ["z"]]
    assert hit_rate_at_k(relevant, retrieved, k=5) == pytest.approx(2 / 3)
    assert hit_rate_at_k(relevant, retrieved, k=1) == pytest.approx(1 / 3)
    assert mrr(relevant, retrieved, k=5) == pytest.approx((1 / 2 + 1 + 0) / 3)
    expected = (1 / np.log2(3) + 1 / (1 + 1 / np.log2(3)) + 0) / 3
    assert ndcg_at_k(relevant, retrieved, k=5) == pytest.approx(expected)
    assert ranking_metrics(relevant, retrieved, k=5)["queries"] == 3.0
    assert ndcg_at_k([{"a": 3.0, "b": 1.0}], [["a", "b"]], k=2) == pytest.approx(1.0)
    assert ndcg_at_k([{"a"}], [["b", "c"]], k=1) == 0.0
    with pytest.raises(DataError, match="relevant has 1 queries but retrieved has 2"):
        mrr([{"a"}], [["a"], ["b"]])


# --- bad input: one line each -----------------------------------------------------------------


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: tether.evaluate([0, 1, 1], [0.2, 0.8]), DataError,
     "the scores has 2 rows but the label has 3"),
    (lambda: tether.evaluate([0, 1, 1], [0.2, 1.4, 0.5]), DataError,
     r"must be probabilities in \[0, 1\]; 1 values are outside \(e.g. 1.4\)"),
    (lambda: tether.evaluate(["a", "b", "c"], [[0.5, 0.4, 0.3], [0.2, 0.3, 0.5], [1, 0, 0]]), DataError,
     "class probabilities must sum to 1 in every row; 1 rows do not \\(row 0 sums to 1.2\\)"),
    (lambda: tether.evaluate([1, 1, 1], [0.2, 0.8, 0.5], task="binary", classes=[0, 1]), DataError,
     "the label has a single class \\(1\\) in all 3 rows: roc_auc needs both classes"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], data=pd.DataFrame({"region": ["a", "b"]}),
                             slices=[{"column": "regoin"}]), DataError,
     "slices\\[0\\].column: no column 'regoin'; did you mean 'region'\\?"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], min={"roc_aux": 0.7}), ConfigError,
     "min.roc_aux: unknown metric 'roc_aux' \\(task binary/multiclass/regression computes: roc_auc,.*did you "
     "mean 'roc_auc'"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], slice_gates=[{"slice": "region", "metric": "recall", "min": 1}]),
     ConfigError, "slice_gates\\[0\\].slice: no slice 'region'"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], beats={"production": 0.1}), ConfigError,
     "beats.production: no baseline 'production' \\(baselines: dummy; add it under baselines\\)"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], slices=[{"column": "a", "bins": 1}]), ConfigError,
     "slices\\[0\\].bins: expected a count of bins"),
    (lambda: tether.evaluate([0, 1], [0.2, 0.8], max_regression={"roc_auc": 0.1}), ConfigError,
     "max_regression.roc_auc: a plain max_regression compares with `baseline`"),
    (lambda: tether.evaluate([1, 2, 3, 4, 3], [1.1, 2.2, 2.9, 4.2, 3.3]), DataError,
     "the label looks like classes .* pass task='regression'"),
])
def test_bad_input_is_a_one_line_error(call, error, match):
    with pytest.raises(error, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_the_run_summary_names_the_first_failed_rule():
    from tether.summary import _describe

    y, score, frame = churn_like(n=1500, seed=18)
    ev = tether.evaluate(y, score, data=frame, slices=[{"column": "region"}], min={"roc_auc": 0.99},
                         max={"brier": 0.01}, resamples=20)
    line = _describe(ev)
    assert "roc_auc 0." in line and "(min 0.99)" in line and "brier" in line and "(max 0.01)" in line
    assert "FAILED gates: roc_auc 0." in line and "is below the minimum 0.99 (+1 more)" in line
    assert line.endswith("; no baseline yet; 4 slice segments")
