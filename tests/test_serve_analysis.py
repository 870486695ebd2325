"""The serving pieces without a server: routing plans of deployments, the sticky hash, the
analysis and its ``analysis_signal`` extension point, and the prediction log writer."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
from tether import hookimpl
from tether.backends import AnalysisSignal
from tether.errors import ConfigError, PluginError
from tether.records import Deployment

pytest.importorskip("uvicorn")

from tether.contrib.serve.analysis import AnalysisContext, judge, settings_of  # noqa: E402
from tether.contrib.serve.plan import plan_of  # noqa: E402
from tether.contrib.serve.routing import bucket  # noqa: E402
from tether.contrib.serve.stats import ArmWindow  # noqa: E402


def deployment(**fields) -> Deployment:
    base = dict(id="deploy-1", model_version_id="mv-m-2", target="", status="", environment="prod",
                stable_version_id="mv-m-1")
    return Deployment(**{**base, **fields})


# --- plans ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy, state, weight, mode, primary, candidate, arms", [
    ("canary", "active", 20.0, "canary", "mv-m-1", "mv-m-2", {"stable": "mv-m-1", "canary": "mv-m-2"}),
    ("canary", "promoted", 100.0, "single", "mv-m-2", None, {"live": "mv-m-2"}),
    ("shadow", "active", 0.0, "shadow", "mv-m-1", "mv-m-2", {"stable": "mv-m-1", "shadow": "mv-m-2"}),
    ("blue_green", "pending", 0.0, "single", "mv-m-1", "mv-m-2", {"blue": "mv-m-1", "green": "mv-m-2"}),
    ("blue_green", "promoted", 100.0, "single", "mv-m-2", "mv-m-2", {"blue": "mv-m-1", "green": "mv-m-2"}),
    ("rollback", "promoted", 100.0, "single", "mv-m-2", None, {"live": "mv-m-2"}),
])
def test_each_strategy_and_state_routes_as_the_rollout_plugin_documents(strategy, state, weight, mode, primary,
                                                                       candidate, arms):
    plan = plan_of(deployment(strategy=strategy, state=state, weight=weight))
    assert (plan.mode, plan.primary, plan.candidate, plan.arms) == (mode, primary, candidate, arms)
    assert plan.weight == (weight / 100 if mode == "canary" else 0.0)


def test_blue_green_keeps_both_versions_warm_and_a_new_step_is_a_new_plan():
    before = plan_of(deployment(strategy="blue_green", state="pending", analysis={"warmup_requests": 10}))
    after = plan_of(deployment(strategy="blue_green", state="promoted", weight=100.0))
    assert set(before.warm) == set(after.warm) == {"mv-m-1", "mv-m-2"}
    assert (before.mirror, before.mirror_limit, before.previous) == ("mv-m-2", 10, None)  # green warms up
    assert (after.mirror, after.previous) == (None, "mv-m-1")  # blue answers if green fails
    shadow = plan_of(deployment(strategy="shadow", state="active", analysis={"sample": 0.25}))
    assert (shadow.mirror, shadow.mirror_share, shadow.mirror_limit) == ("mv-m-2", 0.25, None)
    step0 = plan_of(deployment(strategy="canary", state="active", weight=5.0, step=0))
    step1 = plan_of(deployment(strategy="canary", state="active", weight=25.0, step=1))
    assert step0.token != step1.token


def test_the_sticky_hash_is_stable_uniform_and_keeps_canary_keys_as_the_share_grows():
    keys = [f"C{i:06d}" for i in range(20_000)]
    positions = [bucket("deploy-1", k) for k in keys]
    assert positions == [bucket("deploy-1", k) for k in keys]  # the same key, the same place
    assert abs(sum(p < 0.2 for p in positions) / len(keys) - 0.2) < 0.01
    at5 = {k for k, p in zip(keys, positions) if p < 0.05}
    at25 = {k for k, p in zip(keys, positions) if p < 0.25}
    assert at5 < at25  # a key on the canary at 5% stays on it at 25%
    other = [bucket("deploy-2", k) for k in keys]
    assert sum(a < 0.2 and b < 0.2 for a, b in zip(positions, other)) < 0.06 * len(keys)  # salted per deployment


# --- the analysis and its extension point ----------------------------------------------------


def window(arm: str, *, requests: int, errors: int = 0, latency: float = 1.0) -> ArmWindow:
    w = ArmWindow(arm, f"mv-{arm}")
    for i in range(requests):
        w.add(latency, error=i < errors, inputs=[{"x": float(i % 7)}], outputs=[{"prediction": i % 2}])
    return w


def context(host) -> AnalysisContext:
    return AnalysisContext(backends=host.backends, workspace=None, deployment=None)


def test_an_error_rate_above_the_threshold_rolls_back_with_its_evidence(host):
    settings = settings_of({"interval": 0, "min_requests": 50, "signals": {"error_rate": {"max_increase": 0.02}}},
                           backends=host.backends)
    verdict = judge(settings, window("stable", requests=100, errors=1), window("canary", requests=100, errors=10),
                    context=context(host), step=0, weight=0.2)
    assert not verdict.healthy and verdict.reason.startswith("error_rate: canary error rate 10.00%")
    [signal] = verdict.evidence["signals"]
    assert (signal["value"], signal["baseline"], signal["threshold"]) == (0.1, 0.01, 0.03)
    assert verdict.evidence["window"]["canary"]["errors"] == 10 and verdict.evidence["weight"] == 20


def test_no_verdict_before_min_requests_and_no_promotion_before_the_interval(host):
    settings = settings_of({"interval": 3600, "min_requests": 50, "signals": {"error_rate": {}}},
                           backends=host.backends)
    assert judge(settings, window("stable", requests=100), window("canary", requests=49), context=context(host),
                 step=0, weight=0.2) is None
    healthy = judge(settings, window("stable", requests=100), window("canary", requests=60), context=context(host),
                    step=0, weight=0.2)
    assert healthy is None  # healthy, but the step has not run its interval
    failing = judge(settings, window("stable", requests=100), window("canary", requests=60, errors=30),
                    context=context(host), step=0, weight=0.2)
    assert failing is not None and not failing.healthy  # a failing canary is not kept for the interval


def test_latency_p95_judges_the_slow_canary_and_ignores_sub_threshold_noise(host):
    settings = settings_of({"interval": 0, "min_requests": 10, "signals": {"latency_p95": {"max_ratio": 1.5,
                           "min_delta_ms": 5}}}, backends=host.backends)
    ctx = context(host)
    slow = judge(settings, window("stable", requests=50, latency=2.0), window("canary", requests=50, latency=40.0),
                 context=ctx, step=0, weight=0.2)
    assert not slow.healthy and "p95 40.00 ms vs stable 2.00 ms" in slow.reason
    noise = judge(settings, window("stable", requests=50, latency=1.0), window("canary", requests=50, latency=3.0),
                  context=ctx, step=0, weight=0.2)
    assert noise.healthy  # 3x slower but only 2 ms: under min_delta_ms


@attrs.frozen(kw_only=True)
class MaxPositiveRate(AnalysisSignal):
    """A third-party signal: the canary may not predict the positive class too often."""

    name: ClassVar[str] = "max_positive_rate"
    limit: float = 0.3

    def measure(self, stable, canary, *, context):
        rate = float(canary.outputs()["prediction"].mean())
        return {"healthy": rate <= self.limit, "value": rate, "baseline": None, "threshold": self.limit,
                "detail": f"positive rate {rate:.0%}"}


class SignalPlugin:
    @hookimpl
    def tether_add_backends(self, backends):
        backends.add(MaxPositiveRate)


def test_a_plugin_adds_an_analysis_signal_that_deployments_name_with_thresholds(host):
    host.register(SignalPlugin(), name="positive-rate")
    settings = settings_of({"interval": 0, "min_requests": 10,
                            "signals": {"error_rate": {}, "max_positive_rate": {"limit": 0.4}}},
                           backends=host.backends)
    verdict = judge(settings, window("stable", requests=20), window("canary", requests=20), context=context(host),
                    step=1, weight=0.5)
    assert not verdict.healthy
    assert [(s["signal"], s["healthy"]) for s in verdict.evidence["signals"]] == [
        ("error_rate", True), ("max_positive_rate", False)]
    assert verdict.reason == "max_positive_rate: positive rate 50%"


class Raising(MaxPositiveRate):
    name: ClassVar[str] = "raising"

    def measure(self, stable, canary, *, context):
        raise ValueError("cannot judge")


def test_a_signal_that_raises_fails_closed(host):
    host.register(type("P", (), {"tether_add_backends": hookimpl(lambda self, backends: backends.add(Raising))})(),
                  name="raising")
    settings = settings_of({"interval": 0, "min_requests": 1, "signals": {"raising": {}}}, backends=host.backends)
    verdict = judge(settings, window("stable", requests=5), window("canary", requests=5), context=context(host),
                    step=0, weight=0.1)
    assert not verdict.healthy and "signal raised ValueError: cannot judge" in verdict.reason


@pytest.mark.parametrize("analysis, message", [
    ({"signals": {"eror_rate": {}}}, "analysis.signals.eror_rate.plugin: unknown analysis_signal plugin 'eror_rate'; "
                                     "did you mean 'error_rate'?"),
    ({"signals": {"error_rate": {"max_increase": 2}}}, "analysis.signals.error_rate.params.max_increase"),
    ({"signals": {"latency_p95": {"max_ratoi": 2}}}, "analysis.signals.latency_p95.params"),
    ({"min_requests": 0}, "analysis.min_requests: must be an integer >= 1"),
    ({"interval": "soon"}, "analysis.interval: must be a number of seconds"),
    ({"intervall": 3}, "analysis: unknown key 'intervall'; did you mean 'interval'?"),
])
def test_a_bad_analysis_config_names_the_key(host, analysis, message):
    with pytest.raises((ConfigError, PluginError)) as info:
        settings_of(analysis, backends=host.backends)
    assert message in str(info.value)


# --- the prediction log ----------------------------------------------------------------------


def test_the_log_rolls_by_rows_writes_atomically_and_hashes_canonically(tmp_path):
    import hashlib
    import time

    from tether.contrib.serve.predlog import PredictionLog
    from tether.plugins.tables import read_file_table

    log = PredictionLog(tmp_path / "log", log_inputs="full", roll_rows=40, roll_seconds=3600).start()
    entries = [{"timestamp": time.time(), "request_id": f"r{i}", "arm": "live", "model_version": "mv-m-1",
                "status": "ok", "latency_ms": 1.5, "inputs": {"b": i, "a": "x", "prediction": "clash"},
                "outputs": {"prediction": i % 2}} for i in range(100)]
    log.add(entries)
    log.close()
    files = sorted((tmp_path / "log").iterdir())
    assert len(files) == 3 and all(f.suffix == ".parquet" and not f.name.startswith(".") for f in files)
    table = read_file_table(tmp_path / "log")
    assert table.num_rows == 100 and table.column("b").to_pylist() == list(range(100))
    assert table.column("prediction").to_pylist() == [i % 2 for i in range(100)]
    assert table.column("input_prediction").to_pylist() == ["clash"] * 100  # an input never hides an output
    expected = hashlib.sha256(b'{"a":"x","b":0,"prediction":"clash"}').hexdigest()
    assert table.column("input_sha256")[0].as_py() == expected
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


# --- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "tether: error: --port: must be a TCP port (0-65535; 0 picks a free one), got 70000"),
    (["-e", "../prod"], "tether: error: --environment: the environment '../prod' may hold only letters"),
    (["--roll-rows", "0"], "tether: error: --roll-rows: must be at least 1, got 0"),
    (["--log-inputs", "some"], "Invalid value for '--log-inputs'"),
    ([], "is not a workspace folder"),
])
def test_tether_serve_rejects_bad_options_in_one_line_before_starting(tether_cli, tmp_path, args, message):
    result = tether_cli("serve", "-w", str(tmp_path / ".tether"), *args)
    assert result.exit_code == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".tether").exists()  # nothing was started or written
