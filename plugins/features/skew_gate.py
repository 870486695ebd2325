"""The skew gate: ``policy.skew_gate`` runs the training-serving skew check before deploy.

The package's ``tether_deploy`` wrapper hook calls :func:`before_deploy` ahead of every
deployer: with ``policy.skew_gate`` set, it runs the skew check
(:func:`tether.plugins.features.skew.skew_check`) and raises ``StageError`` when training
and serving disagree, so nothing is deployed. When the check passes,
:func:`after_deploy` stores its summary in the deployment's ``details.skew_check``.
``tether features skew`` runs the same check from the command line (:func:`run_skew_gate`).

The policy (docs/features.md)::

    policy:
      skew_gate:
        catalogue: features.yaml              # or omit: the stored definitions
        features: [monthly_charges]           # default: every definition with a calculation
        source: "churn.data:scoring_batch"    # module:function, file, or snapshot id
        serving: {monthly_charges: "serving.features:monthly_charges"}
        online_store: {plugin: sqlite}
        entities: 50
        timestamps: 3
        tolerance: 1e-9
        seed: 0
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from tether.callables import import_callable
from tether.errors import ConfigError, DataError, StageError, reject_unknown_keys

from .catalogue import PY_CALLABLE, all_definitions, load_catalogue
from .skew import SkewReport, skew_check

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

GATE_KEYS = ("catalogue", "features", "source", "serving", "online_store", "entities", "timestamps", "tolerance",
             "seed")


def check_gate_config(config: Any, where: str = "policy.skew_gate") -> None:
    """Raise ``ConfigError`` for a malformed ``policy.skew_gate`` (unknown keys included)."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {config!r}")
    reject_unknown_keys(config, GATE_KEYS, where)
    if not config.get("source"):
        raise ConfigError(f"{where}.source: name the source (module:function, file or snapshot id)")
    if not isinstance(config.get("serving") or {}, Mapping):
        raise ConfigError(f"{where}.serving: expected a mapping of feature -> calculation")
    if not isinstance(config.get("online_store") or {}, Mapping):
        raise ConfigError(f"{where}.online_store: expected {{plugin: NAME, params: {{...}}}}")
    for key, low in (("entities", 1), ("timestamps", 1), ("seed", 0)):
        value = config.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{where}.{key}: expected an integer of at least {low}, got {value!r}")
    tolerance = config.get("tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < float("inf"):
        raise ConfigError(f"{where}.tolerance: expected a number of at least 0, got {tolerance!r}")


def check_policy(value: Any, *, where: str, host) -> None:
    """Validate a chain's ``policy.skew_gate`` before the run (declared with ``add_policy``)."""
    check_gate_config(value, where)


def preflight_skew_gate(context) -> None:
    """Before the run: the chain's ``policy.skew_gate`` and its catalogue must be valid."""
    gate = (context.policy or {}).get("skew_gate")
    if gate:
        check_gate_config(gate)
        if gate.get("catalogue"):
            load_catalogue(context.resolve_path(gate["catalogue"]))


def before_deploy(model_version, context) -> SkewReport | None:
    """With ``policy.skew_gate``, the passed skew check (``None`` without a gate); raises
    ``StageError`` naming the mismatching features when the gate fails."""
    config = (context.policy or {}).get("skew_gate")
    if not config:
        return None
    report = run_skew_gate(config, context=context)
    if not report.passed:
        raise StageError(f"skew gate: training and serving disagree beyond {report.tolerance} for "
                         f"{report.failed_features()}; not deploying {model_version.id}")
    context.log.info("skew gate passed", checked=sum(report.checked.values()))
    return report


def after_deploy(deployment, report: SkewReport | None):
    """The deployment with the gate's summary in ``details.skew_check`` (unchanged without a gate)."""
    if deployment is None or report is None:
        return deployment
    return attrs.evolve(deployment, details={**deployment.details, "skew_check": report.summary()})


def run_skew_gate(config: Mapping[str, Any], *, context) -> SkewReport:
    """The skew check configured as in ``policy.skew_gate`` (see docs/features.md)."""
    from tether.plugins.online_store.lookups import open_online_store

    check_gate_config(config)
    definitions = _gate_definitions(config, context)
    source = load_source(str(config["source"]), base_dir=context.base_dir, workspace=context.workspace)
    store_cfg = config.get("online_store") or {}
    store = open_online_store(context.host, store_cfg.get("plugin", "sqlite"), store_cfg.get("params"),
                              workspace=context.workspace.root)
    try:
        return skew_check(definitions, source, online_store=store, serving=config.get("serving"),
                          entities=int(config.get("entities", 50)), timestamps=int(config.get("timestamps", 3)),
                          tolerance=float(config.get("tolerance", 1e-9)), seed=int(config.get("seed", 0)))
    finally:
        close = getattr(store, "close", None)
        if close:
            close()


def _gate_definitions(config: Mapping[str, Any], context) -> list:
    """The definitions to check: the gate's catalogue or the stored ones, with a calculation."""
    if config.get("catalogue"):
        definitions = load_catalogue(context.resolve_path(config["catalogue"]))
    else:
        definitions = all_definitions(context.store)
    wanted = config.get("features")
    if wanted:
        known = {d.name: d for d in definitions}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise ConfigError(f"policy.skew_gate.features: unknown feature '{missing[0]}'")
        definitions = [known[n] for n in wanted]
    return [d for d in definitions if d.calculation]


def load_source(spec: str, *, base_dir: Path | None = None, workspace=None) -> pd.DataFrame:
    """A source frame from ``module:function``, a Parquet/CSV path, or a snapshot id."""
    import pandas as pd

    if PY_CALLABLE.match(spec):
        frame = import_callable(spec, where="source")()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"source {spec} returned {type(frame).__name__}, not a DataFrame")
        return frame
    if workspace is not None and spec.startswith("snap"):
        snapshot = workspace.store.get(spec, kind="snapshot")
        if snapshot is not None:
            return workspace.read_snapshot(snapshot)
    path = Path(spec)
    path = path if path.is_absolute() or base_dir is None else base_dir / path
    if not path.exists():
        raise DataError(f"source '{spec}' is not a module:function, a snapshot id or an existing file")
    from tether.plugins.tables import read_file_table

    return read_file_table(path).to_pandas()
