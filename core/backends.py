"""Backends: the classes plugins add, and the registry a chain picks them from.

A backend is an attrs class with two class variables, ``kind`` (what it is for) and
``name`` (what a chain writes after ``plugin:``); its attributes are the parameters a
chain passes under ``params:``. Plugins add backends with the ``tether_add_backends``
hook. The base classes below name each kind and document the methods tether calls.

A backend that needs optional libraries lists their import names in ``requires`` and the
extra that installs them in ``extra``; it stays listed, and using it without the extra
fails with the exact ``pip install`` to run.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar, Iterator

import attrs
import cattrs

from .errors import ConfigError, PluginError, did_you_mean
from .serde import describe_structure_error

#: kind -> what it is for; ``tether plugins`` prints these.
KINDS: dict[str, str] = {
    "storage": "stores immutable, content-addressed objects",
    "store": "keeps records, runs and lineage (metadata store)",
    "source": "reads the data a snapshot captures",
    "split": "assigns rows to train/validation/test",
    "leakage": "checks a split for leakage",
    "featurizer": "builds the feature transform fitted on the training split",
    "evaluator": "computes metrics of a model on a held-out split",
    "registry": "registers model versions",
    "deployer": "puts a model version to work",
    "monitor": "compares a current window with a reference",
    "drift": "statistical test for a change in one column's distribution",
    "window": "reads a current window to monitor, in Arrow record batches",
    "alert_sink": "delivers alerts",
    "rollback": "rolls a deployment back to an earlier model version",
    "online_store": "serves the latest feature values per entity",
    "tracker": "mirrors runs, params and metrics to an experiment tracker",
    "trace_sink": "receives LLM/RAG traces",
    "rollout": "decides how traffic moves to a new model version",
}


class Backend:
    """Base of every backend; subclasses set ``kind`` (via their base) and ``name``.

    A backend used by a chain stage may define ``preflight(self, *, context)``. The runner
    calls it for every stage before the run is recorded, so bad input (a missing file, an
    unreachable server) fails with nothing written to the store.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    @classmethod
    def missing_requirements(cls) -> list[str]:
        return [mod for mod in cls.requires if importlib.util.find_spec(mod) is None]


class Storage(Backend):
    """Immutable, content-addressed objects: ``put_*`` returns an ``ObjectRef`` whose
    ``digest`` every read is checked against. Writes are atomic."""

    kind = "storage"


class MetadataStore(Backend):
    """Records, runs and lineage edges; every write is one transaction."""

    kind = "store"


class Source(Backend):
    """Reads the rows a snapshot captures.

    Implement ``read(self, *, context) -> pyarrow.Table | Iterable[pyarrow.RecordBatch]``
    and ``describe(self) -> str`` (shown on the dataset card; never include secrets).
    """

    kind = "source"


class SplitStrategy(Backend):
    """Assigns every row of a frame to a split.

    Implement ``assign(self, frame, *, context) -> pandas.Series`` of ``"train"``,
    ``"validation"``, ``"test"`` or ``"excluded"`` (a row deliberately left out, e.g. in a
    time gap) aligned with ``frame``. ``context`` may be ``None`` outside a run. The
    result must depend only on the rows and the parameters (use a ``seed`` parameter for
    randomness), so the split is reproducible.

    The split stage also reads the attributes ``entity_column``, ``time_column``,
    ``label``, ``label_definition``, ``features_from``, ``ignore_columns`` and ``seed``
    when present (the leakage checks use them); subclass ``tether.plugins.splits._Declared``
    to get them all.
    """

    kind = "split"


class LeakageCheck(Backend):
    """Checks a split for leakage.

    Implement ``check(self, data) -> list[Finding]`` where ``data`` is a
    ``tether.plugins.leakage.LeakageInput``: ``frame`` (pandas DataFrame), ``splits``
    (one of ``train``/``validation``/``test``/``excluded`` per row), ``codes`` (0, 1, 2,
    or -1 for excluded), ``fingerprints``, the declared ``entity_column``,
    ``time_column`` and ``label`` (each possibly ``None``), the feature ``catalog`` and
    ``ignore_columns``. Return no findings when there is nothing to report. Each finding
    has ``check`` (the backend's ``name``), a one-line ``message``, ``evidence`` (row
    positions, entities or columns, samples capped, with counts) and a ``fix``; its
    ``severity`` is replaced by the chain's policy (``fail`` -> ``error``, ``warn`` ->
    ``warning``). Set ``default_action`` (``fail`` or ``warn``) for when the policy does
    not name the check; the check's attributes are the options a policy may set.
    """

    kind = "leakage"


class Featurizer(Backend):
    """Builds an unfitted transform with ``fit``/``transform`` (e.g. an sklearn Pipeline).

    Implement ``build(self)`` (a fresh, unfitted transform), and the properties
    ``input_columns`` (the columns ``fit``/``transform`` receive, in order) and
    ``label_column`` (or ``None``). The featurize stage fits the transform on the training
    split's rows only and stores the fitted object as the artifact batch scoring and
    serving load; the fitted transform needs ``transform(frame)`` and
    ``get_feature_names_out()``, and ``feature_names_in_`` for batch scoring.
    """

    kind = "featurizer"


class Evaluator(Backend):
    """Computes metrics of a fitted model on a held-out matrix."""

    kind = "evaluator"


class Registry(Backend):
    """Registers a trained model as the next version of a named model."""

    kind = "registry"


class Deployer(Backend):
    """Puts a model version to work and returns a ``Deployment`` record."""

    kind = "deployer"


class Monitor(Backend):
    """Compares a current window with a reference and returns a ``MonitorReport``.

    The built-in ``drift`` monitor (``tether.plugins.monitoring``) reads the current window
    through a ``window`` backend (``tether.plugins.monitor_windows``) in record batches.
    """

    kind = "monitor"


class DriftTest(Backend):
    """One statistical test on one column; returns a ``DriftResult``.

    Implement ``run(self, column, ref, cur) -> DriftResult`` on two column sketches
    (``tether.plugins.drift.NumericSketch`` / ``CategoricalSketch``), set the class
    variables ``threshold_type`` (``p_value``, ``distance`` or ``std``), ``applies_to``
    (``numeric``, ``categorical`` or ``both``) and ``version``; ``threshold`` is a param.
    """

    kind = "drift"


class AlertSink(Backend):
    """Delivers alerts: implement ``send(self, alerts: list[dict], *, context, report_id: str) -> None``."""

    kind = "alert_sink"


class OnlineStore(Backend):
    """Serves the latest value of every feature per entity (``view`` names a feature group).

    Implement (``tether.plugins.online_store.OnlineStoreBase`` builds ``materialize`` and
    ``get_online_features`` on top of these):

    * ``check(self) -> None``: raise ``StoreError`` if the store cannot be reached; called
      before every write.
    * ``write(self, view, rows, *, entity, features) -> int``: store ``rows`` of
      ``(entity_id, feature, json_value, feature_ts_ns)`` all-or-nothing; a stored value is
      replaced only by one with a newer feature timestamp, so writing the same rows again
      changes nothing. Returns how many values changed. Also records the view's entity
      column name and feature names.
    * ``read(self, view, entity_ids, features) -> dict``: ``{(entity_id, feature):
      (json_value, feature_ts_ns)}`` for the values that exist.
    * ``view_info(self, view) -> dict | None``: ``{"entity": ..., "features": [...]}``.
    * ``drop_view(self, view) -> None`` and ``describe(self) -> str`` (no secrets).
    """

    kind = "online_store"


class Tracker(Backend):
    kind = "tracker"


class TraceSink(Backend):
    kind = "trace_sink"


class RolloutStrategy(Backend):
    kind = "rollout"


def _strict_converter() -> cattrs.Converter:
    """Converter for params: scalars must already have the declared type (YAML gives it)."""
    from .serde import make_converter

    conv = make_converter()

    def strict(expected, accept):
        def hook(value, _):
            if isinstance(value, bool) and expected is not bool:
                raise TypeError(f"expected {expected.__name__}, got a boolean")
            if not isinstance(value, accept):
                raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")
            return expected(value)

        return hook

    conv.register_structure_hook(int, strict(int, int))
    conv.register_structure_hook(float, strict(float, (int, float)))
    conv.register_structure_hook(str, strict(str, str))
    conv.register_structure_hook(bool, strict(bool, bool))
    return conv


class Backends:
    """The registry of backend classes, filled through ``tether_add_backends``."""

    def __init__(self, on_miss=None) -> None:
        self._classes: dict[tuple[str, str], type] = {}
        self._on_miss = on_miss  # called once when a lookup misses (loads entry points)
        self._converter = None

    def add(self, cls: type) -> None:
        """Add a backend class; its ``kind`` and ``name`` must be set and unique."""
        if not isinstance(cls, type):
            raise PluginError(
                f"backends.add() takes a class, got {cls!r}; pass the class itself, not an instance"
            )
        kind, name = getattr(cls, "kind", None), getattr(cls, "name", None)
        if kind not in KINDS:
            raise PluginError(
                f"backend {cls.__module__}.{cls.__qualname__} has kind {kind!r}; "
                f"use one of {', '.join(KINDS)}"
            )
        if not isinstance(name, str) or not name:
            raise PluginError(f"backend {cls.__module__}.{cls.__qualname__} needs a class variable 'name'")
        if not attrs.has(cls):
            raise PluginError(f"backend {cls.__module__}.{cls.__qualname__} must be an attrs class")
        existing = self._classes.get((kind, name))
        if existing is not None and existing is not cls:
            raise PluginError(
                f"{kind} backend name '{name}' from {cls.__module__} is already used by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._classes[(kind, name)] = cls

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self._classes if k == kind)

    def __iter__(self) -> Iterator[type]:
        return iter(self._classes.values())

    def get(self, kind: str, name: str, *, where: str = "") -> type:
        """The class registered as ``name`` for ``kind``; a miss loads entry points once."""
        cls = self._classes.get((kind, name))
        if cls is None and self._on_miss is not None:
            on_miss, self._on_miss = self._on_miss, None
            on_miss()
            cls = self._classes.get((kind, name))
        if cls is None:
            available = self.names(kind)
            at = f"{where}: " if where else ""
            raise PluginError(
                f"{at}unknown {kind} plugin '{name}'{did_you_mean(name, available)} "
                f"(available: {', '.join(available) or 'none'})"
            )
        missing = cls.missing_requirements()
        if missing:
            raise PluginError(
                f"{kind} plugin '{name}' needs {', '.join(missing)}: "
                f"pip install 'tether[{cls.extra or name}]'"
            )
        return cls

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, *, where: str = "") -> Any:
        """Instantiate a backend from chain params; errors name the key path (``where``)."""
        cls = self.get(kind, name, where=f"{where}.plugin" if where else "")
        params = dict(params or {})
        if self._converter is None:
            self._converter = _strict_converter()
        try:
            return self._converter.structure(params, cls)
        except Exception as exc:  # cattrs raises ClassValidationError / ForbiddenExtraKeysError
            allowed = ", ".join(a.name for a in attrs.fields(cls) if a.init) or "none"
            problems = "; ".join(describe_structure_error(exc))
            at = f"{where}.params" if where else "params"
            raise ConfigError(
                f"{at}: {problems} for {kind} plugin '{name}' (allowed parameters: {allowed})"
            ) from None
